"""A client's patterns cannot stall the server: matched in linear time, or refused up front.

Through the server with the official ``openai`` SDK, against the loopback
Ollama and agent stand-ins. A forced call's answer is checked against the
tool's ``parameters`` in the server's event loop; a pattern that a
backtracking matcher takes ages over, with an answer made for it, is answered
at once (a 502 saying where, or the call). A pattern that cannot be matched in
linear time is a 400 at the tool's ``parameters`` before the backend is called.
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
MESSAGES: list[Any] = [{"role": "user", "content": "Give me the code."}]
FORCE_F: Any = {"type": "function", "function": {"name": "f"}}
PROMPT = 3.0
"""Seconds within which the server answers, with every check it makes."""


def _tool(pattern: str) -> Any:
    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": pattern}},
        "required": ["code"],
    }
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


BACKTRACKING = {
    # pattern: (an answer that fits, one made to make a backtracking matcher give up late)
    r"^(a+)+$": ("a" * 40, "a" * 20_000 + "!"),
    r"(\w+\s?)+$": ("two words", "word " * 4_000 + "!"),
    r"(a|aa)+$": ("aaaa", "a" * 20_000 + "!"),
    r"^.*a.*a.*a.*b$": ("aaab", "a" * 20_000),
}


@pytest.mark.parametrize("pattern", sorted(BACKTRACKING))
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_pattern_that_backtracks_for_ages_is_answered_at_once(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str, pattern: str
) -> None:
    helpers, _ = stand
    right, hostile = BACKTRACKING[pattern]
    helpers.answer_json(backend, {"code": hostile})
    started = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=[_tool(pattern)], tool_choice=FORCE_F
        )
    assert time.perf_counter() - started < PROMPT
    assert caught.value.status_code == 502
    assert "$.code must match pattern" in caught.value.message
    helpers.answer_json(backend, {"code": right})
    done = await client.chat.completions.create(
        model=backend, messages=MESSAGES, tools=[_tool(pattern)], tool_choice=FORCE_F
    )
    (call,) = done.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"code": right}


async def test_other_requests_are_answered_while_a_hostile_answer_is_checked(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI
) -> None:
    helpers, _ = stand
    for _ in range(4):
        helpers.answer_json("ollama", {"code": "a" * 20_000 + "!"})
    hostile = [
        client.chat.completions.create(
            model="ollama", messages=MESSAGES, tools=[_tool(r"^(a+)+$")], tool_choice=FORCE_F
        )
        for _ in range(4)
    ]
    plain = client.chat.completions.create(model="echo", messages=MESSAGES)
    started = time.perf_counter()
    *refused, answered = await asyncio.gather(*hostile, plain, return_exceptions=True)
    assert time.perf_counter() - started < PROMPT
    assert all(isinstance(r, openai.APIStatusError) and r.status_code == 502 for r in refused)
    assert not isinstance(answered, BaseException)
    assert answered.choices[0].message.content


REFUSED = {
    "lookahead": r"^(?=.*\d)(?=.*[a-z]).{8,}$",
    "backreference": r"^(a+)+\1$",
    "atomic group": r"^(?>a+)+b$",
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_pattern_not_matched_in_linear_time_is_a_400_before_the_backend_is_called(
    stand: tuple[Stand, str],
    client: openai.AsyncOpenAI,
    backend: str,
    case: str,
    stream: bool,
) -> None:
    helpers, _ = stand
    pattern = REFUSED[case]
    started = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=backend,
            messages=MESSAGES,
            tools=[_tool(pattern)],
            tool_choice=FORCE_F,
            stream=stream,
        )
    assert time.perf_counter() - started < PROMPT
    assert caught.value.param == "tools[0].function.parameters"
    assert caught.value.code == "invalid_function_parameters"
    assert repr(pattern) in caught.value.message
    assert helpers.calls(backend) == 0


SAFE = {
    r"^\d{3}-\d{4}$": ("555-1234", "5551234"),
    r"^(\d{3}-)+\d{4}$": ("020-030-1234", "020-030-"),
    r"^[a-z]+(-[a-z]+)*$": ("well-kept-path", "double--dash"),
    # a $ in a character class, escaped, or at the end: JSON Schema's meaning, not Python's
    r"^https?://[^\s/$.?#].[^\s]*$": ("https://example.org/a?b=c", "https://$x.org"),
    r"^[a-zA-Z_$][\w$]*$": ("$scope", "a-b"),
    r"^\$\d+(\.\d{2})?$": ("$12.50", "$12.5"),
}


@pytest.mark.parametrize("pattern", sorted(SAFE))
@pytest.mark.parametrize("backend", BACKENDS)
async def test_common_patterns_still_hold_the_answer(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str, pattern: str
) -> None:
    helpers, _ = stand
    right, wrong = SAFE[pattern]
    helpers.answer_json(backend, {"code": wrong})
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=[_tool(pattern)], tool_choice=FORCE_F
        )
    assert caught.value.status_code == 502
    assert f"$.code must match pattern {pattern}" in caught.value.message
    helpers.answer_json(backend, {"code": right})
    done = await client.chat.completions.create(
        model=backend, messages=MESSAGES, tools=[_tool(pattern)], tool_choice=FORCE_F
    )
    (call,) = done.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"code": right}
    assert helpers.calls(backend) == 2
