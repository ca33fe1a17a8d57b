"""Encoding responses and stream chunks: the official SDK's own types parse them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from msgspec import UNSET
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from translator._model import (
    ChatChunk,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    CustomCall,
    CustomToolCall,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    FunctionToolCall,
    PromptTokensDetails,
    ResponseMessage,
    ToolCallDelta,
    Usage,
)
from translator._openai import (
    SSE_DONE,
    encode_chunk,
    encode_response,
    new_completion_id,
    now,
    sse_frame,
)
from translator._streaming import ChunkStream


def _response(**changes: object) -> ChatResponse:
    message = ResponseMessage(
        content="It is 12C in Oslo.",
        tool_calls=[
            FunctionToolCall("call_1", FunctionCall("get_weather", '{"city":"Oslo"}')),
            CustomToolCall("call_2", CustomCall("sql", "SELECT 1")),
        ],
    )
    response = ChatResponse(
        id="chatcmpl-abc",
        created=1_700_000_000,
        model="vlm-agent-1",
        choices=[Choice(0, message, "tool_calls")],
        usage=Usage(
            12,
            5,
            17,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=4),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=2),
            credits_used=1.5,
            steps=3,
            duration_seconds=2.25,
            estimated=False,
        ),
        system_fingerprint="fp_1",
    )
    for name, value in changes.items():
        setattr(response, name, value)
    return response


def test_a_completion_parses_with_the_sdk_type() -> None:
    body = encode_response(_response(session_id="sess-1"))
    completion = ChatCompletion.model_validate_json(body)

    assert completion.id == "chatcmpl-abc"
    assert completion.object == "chat.completion"
    assert completion.created == 1_700_000_000
    assert completion.model == "vlm-agent-1"
    assert completion.system_fingerprint == "fp_1"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content == "It is 12C in Oslo."
    assert choice.message.refusal is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert [c.type for c in calls] == ["function", "custom"]
    assert calls[0].id == "call_1"
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    assert calls[1].custom.input == "SELECT 1"  # type: ignore[union-attr]
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 5, 17)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert json.loads(body)["session_id"] == "sess-1"
    assert completion.model_extra == {"session_id": "sess-1"}


def test_session_id_is_left_out_when_the_request_had_none() -> None:
    body = json.loads(encode_response(_response()))
    assert "session_id" not in body
    assert body["usage"]["credits_used"] == 1.5
    assert body["usage"]["steps"] == 3


def test_a_refusal_parses_with_the_sdk_type() -> None:
    response = _response(
        choices=[Choice(0, ResponseMessage(content=None, refusal="I can't help."), "stop")]
    )
    completion = ChatCompletion.model_validate_json(encode_response(response))
    assert completion.choices[0].message.content is None
    assert completion.choices[0].message.refusal == "I can't help."
    assert completion.choices[0].message.tool_calls is None


@pytest.mark.parametrize(
    "reason", ["stop", "length", "tool_calls", "content_filter", "function_call"]
)
def test_every_finish_reason_parses(reason: FinishReason) -> None:
    message = ResponseMessage(content="x", function_call=FunctionCall("f", "{}"))
    response = _response(choices=[Choice(0, message, reason)], usage=Usage.of(1, 2))
    completion = ChatCompletion.model_validate_json(encode_response(response))
    assert completion.choices[0].finish_reason == reason
    assert completion.choices[0].message.function_call is not None
    assert completion.usage is not None
    assert completion.usage.total_tokens == 3


def _stream_chunks(session_id: str | None = None) -> list[ChatChunk]:
    stream = ChunkStream(
        "vlm-agent-1",
        id="chatcmpl-s",
        created=1_700_000_001,
        session_id=session_id if session_id is not None else UNSET,
    )
    return [
        stream.text("Let me "),
        stream.text("check."),
        stream.tool_calls(
            [ToolCallDelta(0, "call_1", "function", FunctionCallDelta("get_weather", ""))]
        ),
        stream.tool_calls([ToolCallDelta(0, function=FunctionCallDelta(arguments='{"city":'))]),
        stream.tool_calls(
            [
                ToolCallDelta(0, function=FunctionCallDelta(arguments='"Oslo"}')),
                ToolCallDelta(1, "call_2", "function", FunctionCallDelta("get_time", "{}")),
            ]
        ),
        stream.finish("tool_calls"),
        stream.usage(Usage.of(10, 7)),
    ]


def _parse(frame: bytes) -> ChatCompletionChunk:
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    assert b"\n" not in frame[:-2]
    return ChatCompletionChunk.model_validate_json(frame[6:-2])


def test_a_stream_of_chunks_parses_with_the_sdk_type() -> None:
    parsed = [_parse(sse_frame(c)) for c in _stream_chunks(session_id="sess-2")]

    assert {(c.id, c.created) for c in parsed} == {("chatcmpl-s", 1_700_000_001)}
    assert {c.object for c in parsed} == {"chat.completion.chunk"}
    assert all((c.model_extra or {}).get("session_id") == "sess-2" for c in parsed)
    roles = [c.choices[0].delta.role for c in parsed if c.choices]
    assert roles == ["assistant", None, None, None, None, None]
    assert [c.choices[0].delta.content for c in parsed[:2]] == ["Let me ", "check."]

    first_call = parsed[2].choices[0].delta.tool_calls
    assert first_call is not None
    assert (first_call[0].index, first_call[0].id, first_call[0].type) == (0, "call_1", "function")
    last = parsed[4].choices[0].delta.tool_calls
    assert last is not None
    assert [d.index for d in last] == [0, 1]
    assert last[0].id is None

    finish = parsed[5]
    assert finish.choices[0].finish_reason == "tool_calls"
    assert finish.choices[0].delta.content is None
    assert finish.choices[0].delta.tool_calls is None
    assert all(c.choices[0].finish_reason is None for c in parsed[:5])

    usage = parsed[6]
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (10, 7)
    assert usage.usage.total_tokens == 17


def test_chunks_have_no_session_id_when_the_request_had_none() -> None:
    for chunk in _stream_chunks():
        assert b"session_id" not in encode_chunk(chunk)


def test_the_role_goes_in_the_first_delta_even_when_it_is_a_finish() -> None:
    stream = ChunkStream("m")
    only = _parse(sse_frame(stream.finish("length")))
    assert only.choices[0].delta.role == "assistant"
    assert only.choices[0].finish_reason == "length"


def test_each_stream_gets_a_fresh_id() -> None:
    assert ChunkStream("m").id != ChunkStream("m").id
    assert ChunkStream("m").id.startswith("chatcmpl-")


def test_sse_frame_is_data_json_blank_line() -> None:
    chunk = _stream_chunks()[0]
    assert sse_frame(chunk) == b"data: " + encode_chunk(chunk) + b"\n\n"
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_a_reused_buffer_frames_chunks_of_any_size_correctly() -> None:
    small = ChunkStream("m").text("a")
    big = ChunkStream("m").text("word " * 2_000)
    medium = ChunkStream("m").text("x" * 100)
    buffer = bytearray()
    frames = [sse_frame(c, buffer) for c in (big, small, medium, big, small)]
    assert frames == [sse_frame(c) for c in (big, small, medium, big, small)]
    assert frames[1] == b"data: " + encode_chunk(small) + b"\n\n"
    assert _parse(frames[0]).choices[0].delta.content == "word " * 2_000
    assert _parse(frames[4]).choices[0].delta.content == "a"


def test_a_dirty_buffer_does_not_leak_into_the_frame() -> None:
    chunk = ChunkStream("m").text("a")
    buffer = bytearray(b"garbage that is longer than the frame itself" * 20)
    assert sse_frame(chunk, buffer) == sse_frame(chunk)


def test_completion_ids_are_fresh_and_prefixed() -> None:
    ids = {new_completion_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("chatcmpl-") for i in ids)
    assert new_completion_id("resp_").startswith("resp_")
    assert isinstance(now(), int)


@pytest.fixture
async def sse_server() -> AsyncIterator[openai.AsyncOpenAI]:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        buffer = bytearray()
        for chunk in _stream_chunks(session_id="sess-3"):
            await response.write(sse_frame(chunk, buffer))
        await response.write(SSE_DONE)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0
    )
    try:
        yield client
    finally:
        await client.close()
        await server.close()


async def test_the_sdk_stream_helper_assembles_our_chunks(sse_server: openai.AsyncOpenAI) -> None:
    async with sse_server.chat.completions.stream(
        model="vlm-agent-1",
        messages=[{"role": "user", "content": "weather?"}],
        stream_options={"include_usage": True},
    ) as stream:
        async for _event in stream:
            pass
        final = await stream.get_final_completion()

    assert final.id == "chatcmpl-s"
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "get_weather", '{"city":"Oslo"}'),
        ("call_2", "get_time", "{}"),
    ]
    assert final.usage is not None
    assert final.usage.total_tokens == 17


def test_an_upstreams_log_probabilities_pass_through_untouched() -> None:
    import msgspec

    from translator._model import ChatResponse
    from translator._openai import encode_response

    token = {"token": "hi", "logprob": -0.1, "bytes": [104, 105], "top_logprobs": []}
    logprobs = {"content": [token]}
    reply = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
                "logprobs": logprobs,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    response = msgspec.json.decode(msgspec.json.encode(reply), type=ChatResponse)
    encoded = msgspec.json.decode(encode_response(response))
    assert encoded["choices"][0]["logprobs"] == logprobs
