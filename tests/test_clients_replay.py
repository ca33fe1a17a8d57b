"""What real clients send back on the next turn, through the server, to every built-in backend.

The bodies are the ones the clients themselves sent (``tests/fixtures/clients``,
made by ``tests/fixtures/capture_clients.py``): an assistant message replayed
from ``ChatCompletionMessage.model_dump()`` (``annotations``, ``refusal: null``,
``audio: null``, ``function_call: null``, ``tool_calls: null``), a tool message
with a ``name`` (LiteLLM's documented pattern). Replayed output fields are
dropped and reported in ``x-translator-ignored``; nothing is refused for them.
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat import completion_create_params as sdk

from tests.ollama_server import FakeOllama
from tests.vlm_agent_server import FakeAgentServer
from translator.config import parse_config
from translator.plugins import get_plugin_manager
from translator.server import create_app, serving

FIXTURES = Path(__file__).parent / "fixtures" / "clients"


def captured(case: str) -> list[dict[str, Any]]:
    """The bodies a client sent, in order."""
    bodies: list[dict[str, Any]] = json.loads((FIXTURES / f"{case}.json").read_text())
    return bodies


_ROLES: dict[str, Any] = {
    "system": ChatCompletionSystemMessageParam,
    "user": ChatCompletionUserMessageParam,
    "assistant": ChatCompletionAssistantMessageParam,
    "tool": ChatCompletionToolMessageParam,
}


def sdk_problems(body: dict[str, Any]) -> list[str]:
    """Where ``body`` strays from the ``openai`` SDK's request types (keys and nulls)."""
    problems: list[str] = []
    top = typing.get_type_hints(sdk.CompletionCreateParamsBase) | {"stream": bool}
    problems += [f"{key}: not an SDK request field" for key in body.keys() - top.keys()]
    for i, message in enumerate(body.get("messages", [])):
        kind = _ROLES.get(message.get("role"))
        if kind is None:
            problems.append(f"messages[{i}].role: {message.get('role')!r}")
            continue
        hints = typing.get_type_hints(kind)
        problems += [
            f"messages[{i}].{k}: not in {kind.__name__}" for k in message.keys() - hints.keys()
        ]
        if message.get("tool_calls", []) is None:
            problems.append(f"messages[{i}].tool_calls: null")
    return problems


class OpenAIStandIn:
    """An OpenAI-compatible upstream that refuses what the SDK's request types would not send."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        problems = sdk_problems(body)
        if problems:
            return web.json_response({"error": {"message": "; ".join(problems)}}, status=400)
        message = {"role": "assistant", "content": "Hello again."}
        return web.json_response(
            {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


CONFIG = """
[backends.echo]
plugin = "echo"

[backends.ollama]
plugin = "ollama"
base_url = "{ollama}"
options = {{models = {{ollama = "qwen3"}}}}

[backends.agent]
plugin = "vlm-agent"
base_url = "{agent}"
api_key = "agent-key"
options = {{poll_interval = 0.005, poll_max_interval = 0.02, retry_backoff = 0.001}}

[backends.upstream]
plugin = "openai-compatible"
base_url = "{upstream}"
{routes}"""


class Stand:
    """The stand-ins behind the server."""

    def __init__(self) -> None:
        self.ollama = FakeOllama()
        self.agent = FakeAgentServer(polls=1)
        self.upstream = OpenAIStandIn()


@pytest.fixture
async def stand() -> AsyncIterator[tuple[Stand, str]]:
    stand = Stand()
    servers = [
        TestServer(app, host="127.0.0.1")
        for app in (stand.ollama.app(), stand.agent.app(), stand.upstream.app())
    ]
    for server in servers:
        await server.start_server()
    urls = [str(s.make_url("")).rstrip("/") for s in servers]
    routes = "".join(f'[[routes]]\nmodel = "{b}"\nbackend = "{b}"\n' for b in BACKENDS)
    text = CONFIG.format(
        ollama=urls[0], agent=urls[1] + "/v1", upstream=urls[2] + "/v1", routes=routes
    )
    app = create_app(parse_config(text), plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root:
        yield stand, root
    for server in servers:
        await server.close()


async def post(root: str, backend: str, body: dict[str, Any]) -> tuple[int, Any, str]:
    url = f"{root}/v1/chat/completions"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={**body, "model": backend}) as reply,
    ):
        return reply.status, await reply.json(), reply.headers.get("x-translator-ignored", "")


BACKENDS = ["echo", "ollama", "agent", "upstream"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_replayed_sdk_message_is_accepted_and_its_output_fields_reported(
    stand: tuple[Stand, str], backend: str
) -> None:
    helpers, root = stand
    body = captured("openai_replay")[1]
    assert body["messages"][1]["annotations"] is None  # as the SDK sent it
    status, answer, ignored = await post(root, backend, body)
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"]
    assert ignored == "messages[1].annotations"
    if backend == "upstream":
        sent = helpers.upstream.bodies[-1]
        assert sdk_problems(sent) == []
        assert sent["messages"][1] == {
            "role": "assistant",
            "content": "Hello.",
            "refusal": None,
            "audio": None,
            "function_call": None,
        }
    if backend == "agent":
        assert "Assistant: Hello." in helpers.agent.executed[-1]["config"]["prompt"]


@pytest.mark.parametrize("backend", ["echo", "ollama", "upstream"])
async def test_a_tool_message_with_a_name_is_accepted(
    stand: tuple[Stand, str], backend: str
) -> None:
    helpers, root = stand
    body = captured("litellm_tool_name")[0]
    assert body["messages"][2]["name"] == "lookup"
    status, answer, ignored = await post(root, backend, body)
    assert status == 200, answer
    assert ignored == "messages[2].name"
    if backend == "ollama":
        assert helpers.ollama.requests[-1]["messages"][2]["tool_name"] == "lookup"
    if backend == "upstream":
        assert sdk_problems(helpers.upstream.bodies[-1]) == []


async def test_the_agent_still_refuses_a_tool_result_it_could_not_have_asked_for(
    stand: tuple[Stand, str],
) -> None:
    _, root = stand
    status, answer, _ = await post(root, "agent", captured("litellm_tool_name")[0])
    assert status == 400
    assert answer["error"]["param"] == "messages[2]"


NOTHING: dict[str, Any] = {
    "tools": None,
    "tool_choice": None,
    "response_format": None,
    "user": None,
    "parallel_tool_calls": None,
    "functions": [],
    "logit_bias": {},
    "stop": [],
    "metadata": {},
}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_nulls_and_empty_containers_are_the_same_as_leaving_them_out(
    stand: tuple[Stand, str], backend: str
) -> None:
    helpers, root = stand
    body = {"messages": [{"role": "user", "content": "Hi"}], **NOTHING, "reasoning_effort": None}
    status, answer, ignored = await post(root, backend, body)
    assert status == 200, answer
    assert ignored == ""
    if backend == "upstream":
        sent = helpers.upstream.bodies[-1]
        assert not sent.keys() & NOTHING.keys()
    if backend == "ollama":
        assert "tools" not in helpers.ollama.requests[-1]
