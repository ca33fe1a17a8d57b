"""The server on loopback with every built-in backend behind it, each before a stand-in
that checks what it is sent; and the request bodies real clients sent, as captured.

Backends are chosen by model name: ``echo``, ``ollama`` (a :class:`FakeOllama`),
``agent`` (a :class:`FakeAgentServer`) and ``upstream`` (an OpenAI-compatible
stand-in that refuses anything the ``openai`` SDK's request types would not send).
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
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

from tests.ollama_server import FakeOllama, Script
from tests.vlm_agent_server import FakeAgentServer
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving

__all__ = ["BACKENDS", "Stand", "captured", "client", "post", "sdk_problems", "stand"]

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
matrix = {{stream = "emulated"}}
options = {{poll_interval = 0.005, poll_max_interval = 0.02, retry_backoff = 0.001}}

[backends.upstream]
plugin = "openai-compatible"
base_url = "{upstream}"
{routes}"""


BACKENDS = ["echo", "ollama", "agent", "upstream"]


class Stand:
    """The stand-ins behind the server."""

    def __init__(self) -> None:
        self.ollama = FakeOllama()
        self.agent = FakeAgentServer(polls=1)
        self.upstream = OpenAIStandIn()

    def answer_json(self, backend: str, value: Any) -> None:
        """Make the stand-in behind ``backend`` (``ollama`` or ``agent``) answer ``value``
        as its JSON."""
        if backend == "ollama":
            self.ollama.scripts.append(Script(json.dumps(value)))
        else:
            self.agent.answer = lambda job: value

    def calls(self, backend: str) -> int:
        """How many requests the stand-in behind ``backend`` (``ollama`` or ``agent``) got."""
        return len(self.ollama.requests if backend == "ollama" else self.agent.executed)


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


async def post(
    root: str, backend: str, body: dict[str, Any], header: str = "x-translator-ignored"
) -> tuple[int, Any, str]:
    """POST ``body`` to ``backend``: the status, the JSON answer, and ``header``."""
    url = f"{root}/v1/chat/completions"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={**body, "model": backend}) as reply,
    ):
        return reply.status, await reply.json(), reply.headers.get(header, "")


@pytest.fixture
async def client(stand: tuple[Stand, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    """The ``openai`` SDK's client of the server before the stand-ins (no retries)."""
    sdk = openai.AsyncOpenAI(base_url=f"{stand[1]}/v1", api_key="k", max_retries=0)
    yield sdk
    await sdk.close()
