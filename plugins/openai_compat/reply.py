"""Reading the upstream's replies: whole completions, stream chunks, and errors
(passed through with the upstream's message, type, param and code)."""

from __future__ import annotations

from typing import Any

import msgspec

from translator.plugin_api import (
    ChatChunk,
    ChatResponse,
    MalformedUpstreamError,
    SSEEvent,
    UpstreamDetail,
    UpstreamStatusError,
    new_completion_id,
    now,
)

from .matrix import PLUGIN

__all__ = ["DONE", "ChunkDecoder", "decode_response", "parse_error", "reported_error"]


DONE = b"[DONE]"
_chunk_decoder = msgspec.json.Decoder(ChatChunk)
_response_decoder = msgspec.json.Decoder(ChatResponse)
_any_decoder = msgspec.json.Decoder()


def parse_error(body: bytes) -> UpstreamDetail | None:
    """The upstream's error as it said it: OpenAI's ``{"error": {...}}`` or a common variant."""
    found = _any_decoder.decode(body)
    return _detail(found) if isinstance(found, dict) else None


def _detail(found: dict[str, Any]) -> UpstreamDetail | None:
    error = found.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _detail_of(error)
    if isinstance(error, str) and error:
        return UpstreamDetail(error)
    if isinstance(found.get("message"), str) and found["message"]:
        return _detail_of(found)  # the flat form: {"object": "error", "message": ...}
    detail = found.get("detail")
    if isinstance(detail, str) and detail:
        return UpstreamDetail(detail)
    return None


def _detail_of(error: dict[str, Any]) -> UpstreamDetail:
    return UpstreamDetail(
        error["message"],
        type=_text(error.get("type")),
        param=_text(error.get("param")),
        code=_text(error.get("code")),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _upstream_error(detail: UpstreamDetail, backend: str) -> UpstreamStatusError:
    """An error the upstream reported inside a 200 reply, passed through as a 502."""
    return UpstreamStatusError(
        detail.message,
        status=502,
        backend=backend,
        error_type=detail.type or "upstream_error",
        param=detail.param,
        code=detail.code,
    )


def _scrub(value: Any) -> Any:
    """Drop nulls and ``logprobs`` from generic JSON so the canonical types accept it."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if v is not None and k != "logprobs"}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _lenient(body: bytes, backend: str) -> dict[str, Any]:
    try:
        found = _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedUpstreamError(
            f"The {backend} backend sent JSON that could not be parsed: {exc}", backend=backend
        ) from None
    if not isinstance(found, dict):
        raise MalformedUpstreamError(
            f"The {backend} backend sent JSON that is not an object.", backend=backend
        )
    detail = _detail(found) if "error" in found else None
    if detail is not None:
        raise _upstream_error(detail, backend)
    scrubbed: dict[str, Any] = _scrub(found)
    return scrubbed


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is a list (a list of anything else is left to fail)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _convert(obj: dict[str, Any], kind: type[Any], backend: str) -> Any:
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise MalformedUpstreamError(
            f"The {backend} backend sent a reply that is not a chat completion: {exc}",
            backend=backend,
        ) from None


def decode_response(body: bytes, *, model: str, backend: str = PLUGIN) -> ChatResponse:
    """A ``chat.completion`` into the canonical response, tolerant of extras and nulls."""
    try:
        return _response_decoder.decode(body)
    except msgspec.DecodeError:
        pass
    obj = _lenient(body, backend)
    obj.setdefault("id", new_completion_id())
    obj.setdefault("created", now())
    obj.setdefault("model", model)
    obj.setdefault("usage", {})
    for choice in _dicts(obj.get("choices")):
        message = choice.get("message")
        for call in _dicts(message.get("tool_calls") if isinstance(message, dict) else None):
            call.setdefault("type", "function")
            call.setdefault("id", new_completion_id("call_"))
    response: ChatResponse = _convert(obj, ChatResponse, backend)
    return response


class ChunkDecoder:
    """Decodes one stream's chunks; fills an id, ``created`` or model left out."""

    __slots__ = ("backend", "created", "id", "model")

    def __init__(self, model: str, backend: str) -> None:
        self.model = model
        self.backend = backend
        self.id = new_completion_id()
        self.created = now()

    def decode(self, event: SSEEvent) -> ChatChunk:
        if event.event == "error":
            raise reported_error(event.data, self.backend, "reported an error in its stream")
        try:
            return _chunk_decoder.decode(event.data)
        except msgspec.DecodeError:
            pass
        obj = _lenient(event.data, self.backend)
        obj.setdefault("id", self.id)
        obj.setdefault("created", self.created)
        obj.setdefault("model", self.model)
        for choice in _dicts(obj.get("choices")):
            choice.setdefault("delta", {})
        chunk: ChatChunk = _convert(obj, ChatChunk, self.backend)
        return chunk


def reported_error(body: bytes, backend: str, what: str) -> Exception:
    """The upstream's error in ``body``, or a 502 saying the upstream ``what``."""
    try:
        detail = parse_error(body)
    except msgspec.DecodeError:
        detail = None
    if detail is not None:
        return _upstream_error(detail, backend)
    shown = body[:200].decode("utf-8", "replace")
    return MalformedUpstreamError(f"The {backend} backend {what}: {shown}", backend=backend)
