"""Ollama replies as canonical responses, and its NDJSON stream as chunks.

``done_reason`` becomes ``finish_reason`` (``tool_calls`` whenever tools were
called, ``length`` when ``num_predict`` cut the answer, else ``stop``); usage
comes from ``prompt_eval_count`` and ``eval_count``. Each tool call gets an id
(Ollama's own when it sends one) and its arguments back as a JSON string.
"""

from __future__ import annotations

from time import time

import msgspec
from msgspec import UNSET

from translator.plugin_api import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkStream,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    FunctionToolCall,
    MalformedUpstreamError,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    UpstreamError,
    Usage,
    new_completion_id,
)

from . import native

_decode_line = native.line_decoder.decode

__all__ = ["LineTranslator", "decode_reply", "error_message"]


class _ErrorBody(msgspec.Struct):
    error: str


_error_decoder = msgspec.json.Decoder(_ErrorBody)


def error_message(body: bytes) -> str | None:
    """Ollama's message from an error body ``{"error": "..."}``."""
    return _error_decoder.decode(body).error


def _call_id(call: native.ToolCall) -> str:
    return call.id if isinstance(call.id, str) and call.id else new_completion_id("call_")


def _finish(line: native.ChatLine, called: bool) -> FinishReason:
    if called:
        return "tool_calls"
    return "length" if line.done_reason == "length" else "stop"


def _parse(body: bytes | bytearray, backend: str) -> native.ChatLine:
    try:
        line = _decode_line(body)
    except msgspec.DecodeError as exc:
        raise MalformedUpstreamError(
            f"The {backend} backend sent a reply that is not Ollama's: {exc}.", backend=backend
        ) from None
    if line.error is not UNSET and line.error is not None:
        raise UpstreamError(
            f"The {backend} backend failed: {line.error}", backend=backend, code="upstream_error"
        )
    return line


def decode_reply(body: bytes, *, model: str, backend: str = "ollama") -> ChatResponse:
    """The ``chat.completion`` for a whole (non-streamed) ``/api/chat`` reply."""
    line = _parse(body, backend)
    reply = line.message
    if reply is None or reply is UNSET:
        raise MalformedUpstreamError(
            f"The {backend} backend's reply has no message.", backend=backend
        )
    native_calls = reply.tool_calls
    if native_calls:
        calls: list[ToolCall] = [
            FunctionToolCall(
                _call_id(call),
                FunctionCall(call.function.name, bytes(call.function.arguments).decode()),
            )
            for call in native_calls
        ]
        message = ResponseMessage(content=reply.content or None, tool_calls=calls)
        finish: FinishReason = "tool_calls"
    else:
        message = ResponseMessage(content=reply.content)
        finish = "length" if line.done_reason == "length" else "stop"
    prompt, completion = line.prompt_eval_count, line.eval_count
    usage = Usage(prompt, completion, prompt + completion)
    return ChatResponse(
        new_completion_id(), int(time()), model, [Choice(0, message, finish)], usage
    )


_NO_MESSAGE = native.ReplyMessage()
"""What a line without a message says: nothing."""


class LineTranslator:
    """Turns the lines of one Ollama stream into chunks, as they come.

    An error line raises :class:`UpstreamError`; :attr:`done` tells whether
    the closing line (``"done": true``) has been seen.
    """

    __slots__ = ("_backend", "_calls", "_include_usage", "_stream", "done")

    def __init__(self, stream: ChunkStream, *, include_usage: bool, backend: str) -> None:
        self._stream = stream
        self._include_usage = include_usage
        self._backend = backend
        self._calls = 0
        self.done = False

    def feed(self, body: bytes | bytearray) -> list[ChatChunk]:
        """The chunks for one NDJSON line (possibly none)."""
        line = _parse(body, self._backend)
        reply = line.message
        if reply is None or reply is UNSET:
            reply = _NO_MESSAGE
        elif not line.done and not reply.tool_calls:  # the usual line: a piece of text
            return [self._stream.text(reply.content)] if reply.content else []
        chunks: list[ChatChunk] = []
        if reply.content:
            chunks.append(self._stream.text(reply.content))
        if reply.tool_calls:
            deltas = []
            for call in reply.tool_calls:
                arguments = bytes(call.function.arguments).decode()
                function = FunctionCallDelta(call.function.name, arguments)
                deltas.append(ToolCallDelta(self._calls, _call_id(call), "function", function))
                self._calls += 1
            chunks.append(self._stream.tool_calls(deltas))
        if line.done:
            self.done = True
            chunks.append(self._stream.finish(_finish(line, self._calls > 0)))
            if self._include_usage:
                chunks.append(self._stream.usage(Usage.of(line.prompt_eval_count, line.eval_count)))
        return chunks
