"""The payloads: OpenAI requests, the native replies to them, and a long stream.

Everything is built deterministically from code (no files, no network), once
per run. Replies are rendered in each backend family's own wire format from
one description of the answer, so every backend decodes the same answer.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import msgspec

from translator._model import (
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    FunctionToolCall,
    ResponseMessage,
    ToolCall,
    Usage,
)
from translator._openai import encode_chunk
from translator._streaming import ChunkStream

__all__ = [
    "STREAM_CHUNKS",
    "Answer",
    "Payload",
    "build_payloads",
    "native_reply",
    "stream_lines",
]

STREAM_CHUNKS = 500
_MODEL = "gpt-4o-mini"
_TEXT = (
    "the invoice lists three items shipped on the second of march and paid by card "
    "with a total of four hundred and twelve euros including tax"
)


class Answer(msgspec.Struct, frozen=True):
    """What the backend answered, before it is put in any wire format."""

    content: str | None
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    """``(id, name, arguments JSON)`` of each call."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Payload(msgspec.Struct, frozen=True):
    """One OpenAI request, the answer to it, and a fallback without remote media."""

    name: str
    body: bytes
    answer: Answer
    without_urls: bytes | None = None
    """The same request without URL images, for backends that would fetch them."""


def _words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    words = _TEXT.split()
    return " ".join(rng.choice(words) for _ in range(n))


def _small() -> Payload:
    body = {
        "model": _MODEL,
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello to the benchmark in one short sentence."},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    answer = Answer("Hello, benchmark: nice to meet you.", prompt_tokens=24, completion_tokens=9)
    return Payload("small text", msgspec.json.encode(body), answer)


def _image_data_uri(size: int = 1_000_000) -> str:
    """A data URI of about ``size`` bytes (base64 of deterministic noise)."""
    raw = b"\xff\xd8\xff\xe0" + random.Random(7).randbytes(size * 3 // 4 - 4)
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def _vision() -> Payload:
    def body(with_url: bool) -> bytes:
        parts: list[dict[str, object]] = [
            {"type": "text", "text": "What is in these two images? Compare them."},
            {"type": "image_url", "image_url": {"url": _image_data_uri(), "detail": "high"}},
        ]
        if with_url:
            url = "https://images.example.com/photos/cat-on-a-keyboard.png"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return msgspec.json.encode(
            {"model": _MODEL, "messages": [{"role": "user", "content": parts}]}
        )

    answer = Answer(_words(120, 1), prompt_tokens=1_530, completion_tokens=160)
    return Payload("vision 1 MB", body(True), answer, without_urls=body(False))


_WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
    },
    "required": ["city"],
    "additionalProperties": False,
}
_SEARCH_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "filters": {
            "type": "object",
            "properties": {
                "year": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "limit": {"type": "integer", "default": 5},
    },
    "required": ["query"],
}
_ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "forecast": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"day": {"type": "string"}, "high": {"type": "number"}},
                "required": ["day", "high"],
            },
        },
    },
    "required": ["summary", "forecast"],
    "additionalProperties": False,
}


def _conversation() -> Payload:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You plan trips. Use the tools when they help."}
    ]
    turn = 0
    while len(messages) < 37:
        call_id = f"call_{turn:04d}"
        city = ["Paris", "Lyon", "Oslo", "Porto", "Kyoto"][turn % 5]
        messages += [
            {"role": "user", "content": f"Turn {turn}: what about {city}? " + _words(25, turn)},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": msgspec.json.encode({"city": city, "days": 3}).decode(),
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": msgspec.json.encode(
                    {"city": city, "highs": [21.5, 19.0, 23.25], "sky": "clear"}
                ).decode(),
            },
            {"role": "assistant", "content": _words(40, 100 + turn)},
        ]
        turn += 1
    messages += [
        {"role": "user", "content": "Summarise the forecasts as JSON."},
        {"role": "assistant", "content": "Searching the docs first."},
        {"role": "user", "content": "Go ahead."},
    ]
    assert len(messages) == 40, len(messages)
    body = {
        "model": _MODEL,
        "messages": messages,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The forecast for a city.",
                    "parameters": _WEATHER_SCHEMA,
                    "strict": True,
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "search_docs",
                    "description": "Search the travel guides.",
                    "parameters": _SEARCH_SCHEMA,
                },
            },
        ],
        "tool_choice": "auto",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "trip_summary", "schema": _ANSWER_SCHEMA, "strict": True},
        },
        "temperature": 0.7,
    }
    calls = (
        ("call_9001", "search_docs", '{"query":"best months for Kyoto","limit":3}'),
        ("call_9002", "get_weather", '{"city":"Kyoto","unit":"celsius","days":7}'),
    )
    answer = Answer(None, calls, prompt_tokens=2_900, completion_tokens=48)
    return Payload("conversation 40 msgs", msgspec.json.encode(body), answer)


def _vlm() -> Payload:
    body = {
        "model": "vlm-agent-1",
        "messages": [
            {"role": "system", "content": "Extract the invoice fields."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Here is the invoice; return the fields as JSON."},
                    {"type": "input_file", "file_id": "file-3f9a2c81d7e64b0f"},
                ],
            },
        ],
        "session_id": "sess-benchmark-0001",
        "vlmrun": {
            "domain": "document.invoice",
            "metadata": {
                "environment": "dev",
                "session_id": "sess-benchmark-0001",
                "allow_training": False,
                "allow_retention": True,
                "allow_logging": False,
                "extra": {"customer": "acme", "batch": 17},
            },
        },
    }
    content = msgspec.json.encode(
        {"invoice_id": "INV-2041", "total": 412.0, "currency": "EUR", "items": 3}
    ).decode()
    answer = Answer(content, prompt_tokens=850, completion_tokens=30)
    return Payload("vlm extensions", msgspec.json.encode(body), answer)


def build_payloads() -> list[Payload]:
    """Every request payload of the corpus."""
    return [_small(), _vision(), _conversation(), _vlm()]


# -- native replies -----------------------------------------------------------


def _openai_reply(answer: Answer, model: str) -> bytes:
    calls: list[ToolCall] = [
        FunctionToolCall(id=i, function=FunctionCall(name=n, arguments=a))
        for i, n, a in answer.tool_calls
    ]
    message = ResponseMessage(content=answer.content, tool_calls=calls or None)
    finish: FinishReason = "tool_calls" if calls else "stop"
    usage = Usage.of(answer.prompt_tokens, answer.completion_tokens)
    response = ChatResponse(
        "chatcmpl-0123456789abcdef01234567",
        1_764_170_000,
        model,
        [Choice(0, message, finish)],
        usage,
        system_fingerprint="fp_bench",
    )
    return msgspec.json.encode(response)


def _ollama_reply(answer: Answer, model: str) -> bytes:
    message: dict[str, object] = {"role": "assistant", "content": answer.content or ""}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": n, "arguments": msgspec.json.decode(a)}}
            for _, n, a in answer.tool_calls
        ]
    return msgspec.json.encode(
        {
            "model": model,
            "created_at": "2026-11-26T16:00:00.123456789Z",
            "message": message,
            "done_reason": "stop",
            "done": True,
            "total_duration": 4_935_886_791,
            "load_duration": 534_986_708,
            "prompt_eval_count": answer.prompt_tokens,
            "prompt_eval_duration": 107_345_000,
            "eval_count": answer.completion_tokens,
            "eval_duration": 4_289_432_000,
        }
    )


def _vlm_agent_reply(answer: Answer, model: str) -> bytes:
    content = answer.content or ""
    try:
        response: object = msgspec.json.decode(content)
    except msgspec.DecodeError:
        response = {"text": content}
    if not isinstance(response, dict):
        response = {"text": content}
    return msgspec.json.encode(
        {
            "id": "0b7f5e52-9a43-4d1c-8a57-1c2f0e3d4b6a",
            "name": "document.invoice",
            "created_at": "2026-11-26T16:00:00.000000+00:00",
            "completed_at": "2026-11-26T16:00:04.250000+00:00",
            "response": response,
            "execution_mode": "batch",
            "status": "completed",
            "usage": {"credits_used": 3, "steps": 4, "duration_seconds": 4},
        }
    )


_REPLIES: dict[str, Callable[[Answer, str], bytes]] = {
    "echo": _openai_reply,
    "openai-compatible": _openai_reply,
    "ollama": _ollama_reply,
    "vlm-agent": _vlm_agent_reply,
}


def native_reply(plugin: str, answer: Answer, model: str = _MODEL) -> bytes | None:
    """``answer`` in the wire format of ``plugin``'s backend; None for an unknown plugin."""
    render = _REPLIES.get(plugin)
    return None if render is None else render(answer, model)


# -- the stream ----------------------------------------------------------------


def stream_lines(n: int = STREAM_CHUNKS) -> tuple[list[bytes], list[bytes]]:
    """``n`` native stream lines of one answer: OpenAI ``data:`` lines and Ollama NDJSON.

    ``n - 2`` content pieces, then the finish and the usage chunk.
    """
    words = _words(n - 2, 3).split()
    stream = ChunkStream(_MODEL, id="chatcmpl-0123456789abcdef01234567", created=1_764_170_000)
    openai = [b"data: " + encode_chunk(stream.text(w + " ")) for w in words]
    openai.append(b"data: " + encode_chunk(stream.finish("stop")))
    openai.append(b"data: " + encode_chunk(stream.usage(Usage.of(40, n - 2))))
    ollama = [
        msgspec.json.encode(
            {
                "model": _MODEL,
                "created_at": "2026-11-26T16:00:00.123456789Z",
                "message": {"role": "assistant", "content": w + " "},
                "done": False,
            }
        )
        for w in [*words, "."]
    ]
    ollama.append(
        msgspec.json.encode(
            {
                "model": _MODEL,
                "created_at": "2026-11-26T16:00:04.123456789Z",
                "message": {"role": "assistant", "content": ""},
                "done_reason": "stop",
                "done": True,
                "prompt_eval_count": 40,
                "eval_count": n - 2,
            }
        )
    )
    return openai, ollama
