"""The OpenAI Chat Completions wire protocol: decoding, encoding, server-sent events."""

from .decode import decode_error, decode_request
from .encode import (
    encode_chunk,
    encode_request,
    encode_response,
    new_completion_id,
    now,
)
from .sse import SSE_DONE, sse_frame

__all__ = [
    "SSE_DONE",
    "decode_error",
    "decode_request",
    "encode_chunk",
    "encode_request",
    "encode_response",
    "new_completion_id",
    "now",
    "sse_frame",
]
