"""Ollama's native ``/api/chat`` wire format, as msgspec structs.

Requests are encoded from these structs in one pass (``UNSET`` fields are left
out); replies and stream lines are decoded into them. Tool-call arguments and
JSON schemas stay ``msgspec.Raw``: carried byte for byte, never re-parsed.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from translator.plugin_api import SystemMessage, Tool, UserMessage

__all__ = [
    "AnyMessage",
    "ChatLine",
    "ChatRequest",
    "Function",
    "Message",
    "Options",
    "ReplyMessage",
    "ToolCall",
    "line_decoder",
    "request_encoder",
]


class Function(msgspec.Struct):
    name: str
    arguments: msgspec.Raw
    index: int | UnsetType = UNSET


class ToolCall(msgspec.Struct):
    function: Function
    id: str | UnsetType = UNSET


class Message(msgspec.Struct):
    """A message as Ollama takes it: ``images`` are bare base64 strings."""

    role: str
    content: str
    images: list[str] | UnsetType = UNSET
    tool_calls: list[ToolCall] | UnsetType = UNSET
    tool_name: str | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET


AnyMessage = Message | UserMessage | SystemMessage
"""A message to send: a canonical user or system message with text content and no
name is already in Ollama's shape and is encoded as it stands."""


class Options(msgspec.Struct):
    """The sampling options this backend maps; only what the client sent is set."""

    num_predict: int | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    stop: list[str] | UnsetType = UNSET
    presence_penalty: float | UnsetType = UNSET
    frequency_penalty: float | UnsetType = UNSET


class ChatRequest(msgspec.Struct):
    """``POST /api/chat``; ``stream`` is always sent (Ollama streams by default)."""

    model: str
    messages: list[AnyMessage]
    stream: bool
    options: Options | UnsetType = UNSET
    format: msgspec.Raw | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET


class ReplyMessage(msgspec.Struct):
    role: str = "assistant"
    content: str = ""
    tool_calls: list[ToolCall] | UnsetType | None = UNSET


class ChatLine(msgspec.Struct):
    """A whole reply, or one NDJSON line of a stream (``done`` on the last one)."""

    model: str = ""
    message: ReplyMessage | UnsetType | None = UNSET
    done: bool = False
    done_reason: str | UnsetType | None = UNSET
    prompt_eval_count: int = 0
    eval_count: int = 0
    error: str | UnsetType | None = UNSET


request_encoder = msgspec.json.Encoder()
line_decoder = msgspec.json.Decoder(ChatLine)
