"""Messages of a conversation: a union tagged by ``role``."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from .parts import AssistantPart, TextPart, UserPart
from .strict import Strict
from .tools import FunctionCall, ToolCall

__all__ = [
    "AssistantAudio",
    "AssistantMessage",
    "DeveloperMessage",
    "FunctionMessage",
    "Message",
    "SystemMessage",
    "ToolMessage",
    "UserMessage",
]


class MessageBase(Strict, tag_field="role"):
    """Base of every message."""


class SystemMessage(MessageBase, tag="system"):
    content: str | list[TextPart]
    name: str | UnsetType = UNSET


class DeveloperMessage(MessageBase, tag="developer"):
    content: str | list[TextPart]
    name: str | UnsetType = UNSET


class UserMessage(MessageBase, tag="user"):
    content: str | list[UserPart]
    name: str | UnsetType = UNSET


class AssistantAudio(Strict):
    id: str


class AssistantMessage(MessageBase, tag="assistant"):
    """An earlier answer; the fields only an answer carries are accepted and dropped
    (see :mod:`translator.model.replayed`)."""

    content: str | list[AssistantPart] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET
    function_call: FunctionCall | UnsetType | None = UNSET
    audio: AssistantAudio | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    annotations: msgspec.Raw | UnsetType = UNSET
    reasoning_content: msgspec.Raw | UnsetType = UNSET
    reasoning: msgspec.Raw | UnsetType = UNSET


class ToolMessage(MessageBase, tag="tool"):
    content: str | list[TextPart]
    tool_call_id: str
    name: str | UnsetType = UNSET
    """The tool's name, as some clients send it; accepted and dropped."""


class FunctionMessage(MessageBase, tag="function"):
    """The legacy result of a ``function_call``."""

    content: str | None
    name: str


Message = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)
