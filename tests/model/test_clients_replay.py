"""What real clients send back on the next turn, through the server, to every built-in backend.

The bodies are the ones the clients themselves sent (``tests/fixtures/clients``,
made by ``tests/fixtures/capture_clients.py``): an assistant message replayed
from ``ChatCompletionMessage.model_dump()`` (``annotations``, ``refusal: null``,
``audio: null``, ``function_call: null``, ``tool_calls: null``), a tool message
with a ``name`` (LiteLLM's documented pattern). Replayed output fields are
dropped and reported in ``x-translator-ignored``; nothing is refused for them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.client_stand import BACKENDS, Stand, captured, post, sdk_problems, stand

__all__ = ["stand"]


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


@pytest.mark.parametrize("backend", BACKENDS)
async def test_replayed_reasoning_is_dropped_and_reported(
    stand: tuple[Stand, str], backend: str
) -> None:
    helpers, root = stand
    body = captured("openai_replay_reasoning")[1]
    assert body["messages"][1]["reasoning_content"] == "A greeting."
    status, answer, ignored = await post(root, backend, body)
    assert status == 200, answer
    assert ignored == "messages[1].annotations, messages[1].reasoning_content"
    if backend == "upstream":
        assert "reasoning_content" not in helpers.upstream.bodies[-1]["messages"][1]
    if backend == "agent":
        assert "A greeting." not in helpers.agent.executed[-1]["config"]["prompt"]
    status, _, ignored = await post(
        root,
        backend,
        {
            **body,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello.", "reasoning": "A greeting."},
                {"role": "user", "content": "Again?"},
            ],
        },
    )
    assert (status, ignored) == (200, "messages[1].reasoning")


@pytest.mark.parametrize("backend", BACKENDS)
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
    if backend == "agent":
        prompt = helpers.agent.executed[-1]["config"]["prompt"]
        assert "Assistant: called lookup({})" in prompt
        assert prompt.endswith("Tool (lookup): Ada, 36")


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
