"""A recursive schema cannot make a forced call's answer stall the server.

Through the server with the official ``openai`` SDK, against the loopback
Ollama and agent stand-ins. A ``$ref`` back into its own schema under
``anyOf`` checks a nested answer once per branch at every level, 2**20 times
over for an answer nested 20 deep, in the event loop: such a check is cut off
after a bounded number of steps (about a tenth of a second) and the answer is
a 502 saying so, while other requests are served; a nested answer that fits
is the call.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import openai
import pytest

from tests.client_stand import Stand, client, stand

__all__ = ["client", "stand"]

BACKENDS = ["ollama", "agent"]
MESSAGES: list[Any] = [{"role": "user", "content": "Give me the tree."}]
FORCE_F: Any = {"type": "function", "function": {"name": "f"}}
PROMPT = 1.0
"""Seconds within which a hostile answer is refused."""
_BRANCH = {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}}
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/n"}},
            "required": ["tree"],
            "$defs": {"n": {"anyOf": [_BRANCH, {**_BRANCH, "minProperties": 1}]}},
        },
    },
}


def _tree(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"c": value}
    return {"tree": value}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_answer_exponential_to_check_is_a_502_at_once(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str, stream: bool
) -> None:
    helpers, _ = stand
    helpers.answer_json(backend, _tree(20, 5))  # fails at the bottom, on every path
    started = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as caught:  # a stream too: before it starts
        await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=[TOOL], tool_choice=FORCE_F, stream=stream
        )
    assert time.perf_counter() - started < PROMPT
    assert caught.value.status_code == 502
    assert "($ takes more than 20,000 steps to check against the schema" in caught.value.message
    helpers.answer_json(backend, _tree(20, {}))
    done = await client.chat.completions.create(
        model=backend, messages=MESSAGES, tools=[TOOL], tool_choice=FORCE_F
    )
    (call,) = done.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == _tree(20, {})


async def test_other_requests_are_answered_while_hostile_answers_are_checked(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI
) -> None:
    helpers, _ = stand
    for _ in range(4):
        helpers.answer_json("ollama", _tree(22, 5))
    hostile = [
        client.chat.completions.create(
            model="ollama", messages=MESSAGES, tools=[TOOL], tool_choice=FORCE_F
        )
        for _ in range(4)
    ]
    started = time.perf_counter()

    async def plain() -> tuple[Any, float]:
        answer = await client.chat.completions.create(model="echo", messages=MESSAGES)
        return answer, time.perf_counter() - started

    refused, (answered, waited) = await asyncio.gather(
        asyncio.gather(*hostile, return_exceptions=True), plain()
    )
    assert time.perf_counter() - started < 2 * PROMPT  # four checks of about a tenth of a second
    assert waited < PROMPT
    assert all(isinstance(r, openai.APIStatusError) and r.status_code == 502 for r in refused)
    assert answered.choices[0].message.content
