"""Encoding canonical objects as OpenAI JSON: responses, requests, chunks (their SSE
framing is in :mod:`translator._openai.sse`)."""

from __future__ import annotations

import time
from random import randbytes

import msgspec

from .._model import ChatChunk, ChatRequest, ChatResponse, unknown_fields

__all__ = [
    "encode_chunk",
    "encode_request",
    "encode_response",
    "new_completion_id",
    "now",
]

_encoder = msgspec.json.Encoder()


def encode_response(response: ChatResponse) -> bytes:
    """A ``chat.completion`` as JSON bytes."""
    return _encoder.encode(response)


def encode_chunk(chunk: ChatChunk) -> bytes:
    """A ``chat.completion.chunk`` as JSON bytes (no SSE framing)."""
    return _encoder.encode(chunk)


def encode_request(request: ChatRequest) -> bytes:
    """The request as OpenAI JSON, with kept unknown top-level fields spliced back in."""
    body = _encoder.encode(request)
    if not request.__dict__:  # where unknown fields are kept (see model.set_unknown_fields)
        return body
    extra = unknown_fields(request)
    if not extra:
        return body
    tail = b",".join(_encoder.encode(k) + b":" + bytes(v) for k, v in extra.items())
    return body[:-1] + b"," + tail + b"}"


def new_completion_id(prefix: str = "chatcmpl-") -> str:
    """A fresh id (a completion, a stream, a tool call): unique, not secret, so no system call."""
    return prefix + randbytes(12).hex()


def now() -> int:
    """The ``created`` timestamp: whole seconds since the epoch."""
    return int(time.time())
