"""Embedders read plain Python: an absent response value is ``None``, never ``UNSET``.

The objects a library user reads (completions, chunks, messages, deltas,
usage) give ``None`` where nothing was said, as the OpenAI SDK's own types do,
while the bytes on the wire stay OpenAI's: an absent optional field is left
out, and the fields OpenAI always sends are sent, null or zero.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from translator._core import Translator
from translator._model import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    ResponseMessage,
    Usage,
)
from translator._openai import encode_chunk, encode_response


def _values(obj: Any) -> list[Any]:
    """Every attribute value of a struct, nested structs and lists followed."""
    found: list[Any] = []
    if isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            found.extend(_values(getattr(obj, name)))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(_values(item))
    else:
        found.append(obj)
    return found


@pytest.fixture
async def translator() -> AsyncIterator[Translator]:
    t = Translator(sessions=False)
    yield t
    await t.aclose()


def _ask(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "Hi there"}], **fields}
    ).encode()


async def test_every_chunk_of_a_stream_reads_none_where_nothing_was_said(
    translator: Translator,
) -> None:
    stream = await translator.stream(
        _ask(stream=True, stream_options={"include_usage": True}), "echo"
    )
    chunks = [chunk async for chunk in stream]
    last_choice = [c for c in chunks if c.choices][-1].choices[0]
    assert last_choice.delta.content is None
    assert last_choice.delta.tool_calls is None
    assert last_choice.finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[0].usage is None
    for chunk in chunks:
        assert msgspec.UNSET not in _values(chunk)
    printed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert printed == "Hi there"


async def test_a_completion_reads_none_where_nothing_was_said(translator: Translator) -> None:
    done = await translator.complete(_ask(), "echo")
    message = done.response.choices[0].message
    assert (message.tool_calls, message.function_call, message.refusal) == (None, None, None)
    assert done.response.session_id is None
    assert done.response.usage.prompt_tokens_details is None
    assert msgspec.UNSET not in _values(done.response)


def test_the_wire_leaves_out_what_is_absent_and_keeps_what_openai_always_sends() -> None:
    response = ChatResponse(
        "chatcmpl-1", 1, "m", [Choice(0, ResponseMessage(content="hi"))], Usage()
    )
    wire = json.loads(encode_response(response))
    assert wire == {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    ChatCompletion.model_validate(wire)
    chunk = ChatChunk("chatcmpl-1", 1, "m", [ChunkChoice(0, Delta())])
    wire = json.loads(encode_chunk(chunk))
    assert wire["choices"] == [{"index": 0, "delta": {}, "finish_reason": None, "logprobs": None}]
    assert "usage" not in wire
    assert "session_id" not in wire
    ChatCompletionChunk.model_validate(wire)


def test_a_decoded_reply_reads_none_for_what_the_upstream_left_out() -> None:
    reply = (
        b'{"id":"x","created":1,"model":"m",'
        b'"choices":[{"index":0,"message":{"content":"ok"}}],"usage":{}}'
    )
    response = msgspec.json.decode(reply, type=ChatResponse)
    assert response.choices[0].message.tool_calls is None
    assert response.usage.completion_tokens_details is None
    assert response.system_fingerprint is None
