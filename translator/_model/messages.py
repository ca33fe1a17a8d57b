"""Messages of a conversation: a union tagged by ``role``."""

from __future__ import annotations

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
    """An earlier answer. What a client replays beyond these fields (``annotations``,
    ``reasoning_content``, ``tool_calls: null``) is taken off when decoding
    (see :mod:`translator._model.replayed`)."""

    content: str | list[AssistantPart] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType = UNSET
    function_call: FunctionCall | UnsetType | None = UNSET
    audio: AssistantAudio | UnsetType | None = UNSET
    name: str | UnsetType = UNSET


class ToolMessage(MessageBase, tag="tool"):
    """A tool's result. A replayed ``name`` is taken off when decoding
    (see :mod:`translator._model.replayed`)."""

    content: str | list[TextPart]
    tool_call_id: str


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
