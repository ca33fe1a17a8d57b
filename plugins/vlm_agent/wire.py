"""The agent server's own wire format: executions, their usage, uploaded files.

Shapes follow the public ``vlmrun`` SDK (``AgentExecutionConfig``,
``AgentExecutionResponse``, ``CreditUsage``, ``FileResponse``). Inputs are
content parts shaped as the SDK's ``vlmrun.types.MessageContent``, which the
canonical parts already are, so they are encoded as they stand.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from translator.plugin_api import RequestMetadata, UserPart

__all__ = [
    "NULL",
    "WAITING",
    "AgentConfig",
    "CreditUsage",
    "ExecuteRequest",
    "Execution",
    "FileResponse",
    "decode_execution",
    "decode_file",
    "encode_execute",
    "error_message",
    "failure_message",
    "multipart_file",
]

NULL: Final = msgspec.Raw(b"null")

WAITING: Final = frozenset({"enqueued", "pending", "running", "paused"})
"""Statuses of an execution that is not finished yet."""


class AgentConfig(msgspec.Struct, kw_only=True):
    """``config`` of an execution (the SDK's ``AgentExecutionConfig``)."""

    prompt: str
    json_schema: msgspec.Raw | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    service_tier: str | UnsetType = UNSET


class ExecuteRequest(msgspec.Struct, kw_only=True):
    """The body of ``POST /agent/execute``."""

    model: str
    name: str | None
    batch: bool
    inputs: dict[str, UserPart] | None
    config: AgentConfig
    metadata: RequestMetadata
    toolsets: list[str] | UnsetType = UNSET


class CreditUsage(msgspec.Struct, kw_only=True):
    """What an execution cost; token counts only if the agent reports them."""

    credits_used: float | None = None
    steps: int | None = None
    duration_seconds: float | None = None
    elements_processed: int | None = None
    element_type: str | None = None
    message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Execution(msgspec.Struct, kw_only=True):
    """An execution as the agent server reports it (``AgentExecutionResponse``)."""

    id: str
    status: str
    name: str | None = None
    response: msgspec.Raw = msgspec.field(default_factory=lambda: NULL)
    """The agent's answer as raw JSON (``null`` when there is none)."""
    usage: CreditUsage | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    error: Any = None
    message: str | None = None


class FileResponse(msgspec.Struct, kw_only=True):
    """The answer to ``POST /files`` (only the id matters here)."""

    id: str | None
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None


_encoder = msgspec.json.Encoder()
_execution = msgspec.json.Decoder(Execution)
_file = msgspec.json.Decoder(FileResponse)
_any = msgspec.json.Decoder()


encode_execute: Final[Callable[[ExecuteRequest], bytes]] = _encoder.encode
"""The JSON body of an execute request (the encoder's own method: no extra call)."""

decode_execution: Final[Callable[[bytes], Execution]] = _execution.decode
"""An execution from JSON; raises ``msgspec.DecodeError`` if it is not one."""


def decode_file(body: bytes) -> FileResponse:
    """A ``FileResponse`` from JSON; raises ``msgspec.DecodeError`` if it is not one."""
    return _file.decode(body)


def _text_of(value: Any) -> str | None:
    """A message inside an error value: a string, or an object's ``message``/``detail``."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        for key in ("message", "detail", "error"):
            found = _text_of(value.get(key))
            if found:
                return found
    if isinstance(value, list) and value:
        parts = [p for p in (_text_of(v) or _msg(v) for v in value) if p]
        return "; ".join(parts) or None
    return None


def _msg(value: Any) -> str | None:
    """FastAPI's validation items carry their text in ``msg``."""
    if isinstance(value, dict) and isinstance(value.get("msg"), str):
        return str(value["msg"])
    return None


def error_message(body: bytes) -> str | None:
    """The message of an error reply (``{"detail": ...}``, ``{"error": ...}``, ...)."""
    return _text_of(_any.decode(body))


def failure_message(execution: Execution) -> str:
    """Why an execution failed, as the agent said it."""
    for value in (execution.error, execution.message, _any.decode(execution.response)):
        found = _text_of(value)
        if found:
            return found
    if execution.usage is not None and execution.usage.message:
        return execution.usage.message
    return "the agent gave no reason"


_QUOTE: Final = str.maketrans({"\\": "%5C", '"': "%22", "\r": "%0D", "\n": "%0A"})


def _quoted(filename: str) -> str:
    return filename.translate(_QUOTE)


def multipart_file(filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one field ``file``, and its content type.

    Built as bytes so that a retried upload sends exactly the same body.
    """
    boundary = "vlm-agent-" + os.urandom(12).hex()
    if not content_type:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_quoted(filename)}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"
