"""Forced tool calls emulated through a JSON schema, on the backends that cannot force one.

The bodies are those LangChain (``with_structured_output(method="function_calling")``),
instructor (``Mode.TOOLS``), pydantic-ai (its default output tool, ``"required"``) and
the OpenAI SDK's stream helper sent (``tests/fixtures/clients``). Ollama is asked for
``format`` = the tool's schema, the agent for ``config.json_schema``; the JSON comes
back as the forced call.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.client_stand import Stand, captured, post, sdk_problems, stand
from tests.ollama_server import Script

__all__ = ["stand"]

ANSWER = {"name": "Ada", "age": 36}
EMULATED = "x-translator-emulated"


class Person(BaseModel):
    name: str
    age: int


def _call_of(answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    return call["function"]["name"], json.loads(call["function"]["arguments"])


CASES = {
    "langchain_function_calling": "Person",
    "instructor_tools": "Person",
    "pydantic_ai_output": "final_result",
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_a_captured_forced_call_comes_back_as_that_call(
    stand: tuple[Stand, str], backend: str, case: str
) -> None:
    helpers, root = stand
    body = captured(case)[0]
    status, answer, emulated = await post(root, backend, body, EMULATED)
    assert status == 200, answer
    assert _call_of(answer) == (CASES[case], ANSWER)
    assert emulated.startswith("tool_choice.")
    if backend == "ollama":
        sent = helpers.ollama.requests[-1]
        assert "tools" not in sent
        assert sent["format"] == body["tools"][0]["function"]["parameters"]
    else:
        config = helpers.agent.executed[-1]["config"]
        assert config["json_schema"] == body["tools"][0]["function"]["parameters"]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", ["echo", "upstream"])
async def test_a_backend_that_takes_tools_gets_the_forced_call_as_sent(
    stand: tuple[Stand, str], backend: str, case: str
) -> None:
    helpers, root = stand
    body = captured(case)[0]
    status, answer, emulated = await post(root, backend, body, EMULATED)
    assert status == 200, answer
    assert "tool_choice" not in emulated
    if backend == "echo":  # echo answers with the text it was sent
        assert answer["choices"][0]["message"]["content"] == body["messages"][-1]["content"]
    else:
        sent = helpers.upstream.bodies[-1]
        assert sdk_problems(sent) == []
        assert (sent["tool_choice"], sent["tools"]) == (body["tool_choice"], body["tools"])


@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_required_with_several_tools_answers_with_the_chosen_one(
    stand: tuple[Stand, str], backend: str
) -> None:
    _, root = stand
    body = captured("pydantic_ai_output")[0]
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    body = {**body, "tools": [*body["tools"], other]}
    status, answer, _ = await post(root, backend, body)
    assert status == 200, answer
    assert _call_of(answer) == ("final_result", ANSWER)


@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_a_forced_call_streams_as_tool_call_deltas(
    stand: tuple[Stand, str], backend: str
) -> None:
    _, root = stand
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
    body = captured("openai_stream_tool")[0]
    assert body["stream"] is True
    async with client.chat.completions.stream(
        model=backend,
        messages=body["messages"],
        tools=[openai.pydantic_function_tool(Person)],
        tool_choice={"type": "function", "function": {"name": "Person"}},
        parallel_tool_calls=False,
    ) as stream:
        final = await stream.get_final_completion()
    await client.close()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == Person(**ANSWER)
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_the_sdk_parse_helper_gets_a_validated_object(
    stand: tuple[Stand, str], backend: str
) -> None:
    _, root = stand
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
    done = await client.chat.completions.parse(
        model=backend,
        messages=captured("openai_parse")[0]["messages"],
        response_format=Person,
    )
    await client.close()
    assert done.choices[0].message.parsed == Person(**ANSWER)


@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_pydantic_ai_gets_a_validated_object(stand: tuple[Stand, str], backend: str) -> None:
    provider = OpenAIProvider(base_url=f"{stand[1]}/v1", api_key="k")
    agent = Agent(OpenAIChatModel(backend, provider=provider), output_type=Person)
    result = await agent.run("Who wrote the first program?")
    assert result.output == Person(**ANSWER)


@pytest.mark.parametrize("backend", ["ollama", "agent"])
async def test_a_second_turn_with_the_tool_result_is_answered(
    stand: tuple[Stand, str], backend: str
) -> None:
    helpers, root = stand
    call = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "Person", "arguments": json.dumps(ANSWER)}  # type: ignore[assignment]
    body = {
        "messages": [
            {"role": "user", "content": "Who?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Ada Lovelace, 36"},
        ],
        "tools": captured("instructor_tools")[0]["tools"],
    }
    status, answer, _ = await post(root, backend, {**body, "tool_choice": "none"})
    if backend == "agent":  # tools without a forced call: refused, the agent cannot decide
        assert (status, answer["error"]["param"]) == (400, "tools")
        status, answer, _ = await post(root, backend, {"messages": body["messages"]})
        assert "Tool (Person): Ada Lovelace, 36" in helpers.agent.executed[-1]["config"]["prompt"]
    else:
        assert helpers.ollama.requests[-1]["messages"][-1]["content"] == "Ada Lovelace, 36"
    assert status == 200, answer
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_an_answer_that_is_no_call_is_a_502_naming_the_backend(
    stand: tuple[Stand, str],
) -> None:
    helpers, root = stand
    helpers.ollama.scripts.append(Script("I would rather not."))
    status, answer, _ = await post(root, "ollama", captured("instructor_tools")[0])
    assert status == 502
    assert "ollama" in answer["error"]["message"]
    assert "Person" in answer["error"]["message"]
    helpers.agent.answer = lambda job: {"nickname": "Ada"}
    status, answer, _ = await post(root, "agent", captured("instructor_tools")[0])
    assert status == 502
    assert "agent" in answer["error"]["message"]
    assert "'name'" in answer["error"]["message"]


async def test_the_agent_refuses_tools_it_would_have_to_decide_on(
    stand: tuple[Stand, str],
) -> None:
    _, root = stand
    body = {**captured("instructor_tools")[0], "tool_choice": "auto"}
    status, answer, _ = await post(root, "agent", body)
    assert (status, answer["error"]["param"]) == (400, "tool_choice")
    body.pop("tool_choice")
    status, answer, _ = await post(root, "agent", body)
    assert (status, answer["error"]["param"]) == (400, "tools")
