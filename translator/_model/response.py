"""The canonical chat response, stream chunk and usage.

Field names follow the OpenAI ``chat.completion`` and ``chat.completion.chunk``
objects, so encoding is one ``msgspec`` pass. Backend-specific usage (an agent's
credits, steps and duration) rides in :class:`Usage` beside the token counts.

These structs are what embedders read, so an absent value reads as ``None``,
as in the OpenAI SDK's own types, never msgspec's ``UNSET``. The wire stays
OpenAI's: each struct omits the optional fields it does not have
(``omit_defaults``), while a field OpenAI always sends (``content``,
``refusal``, ``finish_reason``, ``logprobs``, the token counts) has a default
*factory*, which ``omit_defaults`` never omits, so it is sent even when null
or zero. The factories are C callables (``NoneType``, ``int``, ``repeat(value).__next__``):
no Python call per struct. ``logprobs`` is the one exception to reading
``None``: an upstream's log probabilities pass through as raw JSON, so an
absent one is the raw ``null``.

These structs are tolerant: backends decode upstream replies with them, and a
key an upstream adds is ignored. The tool calls of a reply are the request
model's own (an answer goes back into the conversation), which refuse unknown
keys; a reply is decoded through tolerant twins of them instead, which
:class:`ResponseMessage` turns back into the canonical calls.
"""

from __future__ import annotations

from itertools import repeat
from types import NoneType
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .tools import CustomCall, CustomToolCall, FunctionCall, FunctionToolCall, ToolCall

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Delta",
    "FinishReason",
    "FunctionCallDelta",
    "PromptTokensDetails",
    "ResponseMessage",
    "ResponseStruct",
    "ToolCallDelta",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


_NULL: Any = msgspec.field(default_factory=NoneType)
"""The default of a field sent as ``null`` when absent (``omit_defaults`` keeps it)."""
_ZERO: Any = msgspec.field(default_factory=int)
"""The default of a count sent as ``0`` when absent."""


def _always(value: object) -> Any:
    """The default of a field always sent with ``value`` when absent (``object``, ``role``)."""
    return msgspec.field(default_factory=repeat(value).__next__)


class ResponseStruct(msgspec.Struct, omit_defaults=True):
    """Base of the response side: absent reads ``None``, and is left off the wire."""


class PromptTokensDetails(ResponseStruct):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(ResponseStruct):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(ResponseStruct):
    """Token counts, plus what an agent backend reports about its work."""

    prompt_tokens: int = _ZERO
    completion_tokens: int = _ZERO
    total_tokens: int = _ZERO
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    credits_used: float | None = None
    steps: int | None = None
    duration_seconds: float | None = None
    estimated: bool | None = None

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        """Usage with the total filled in."""
        return cls(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)


class _ReplyFunctionCall(FunctionCall, forbid_unknown_fields=False):
    pass


class _ReplyFunctionToolCall(FunctionToolCall, forbid_unknown_fields=False):
    function: _ReplyFunctionCall


class _ReplyCustomCall(CustomCall, forbid_unknown_fields=False):
    pass


class _ReplyCustomToolCall(CustomToolCall, forbid_unknown_fields=False):
    custom: _ReplyCustomCall


if TYPE_CHECKING:
    _Calls = list[ToolCall]
    _Call = FunctionCall
else:  # what a reply is decoded as; __post_init__ makes the calls canonical
    _Calls = list[_ReplyFunctionToolCall | _ReplyCustomToolCall]
    _Call = _ReplyFunctionCall


def _canonical(call: ToolCall) -> ToolCall:
    """The request model's own struct for a tool call decoded from a reply."""
    if isinstance(call, FunctionToolCall):
        return FunctionToolCall(call.id, FunctionCall(call.function.name, call.function.arguments))
    return CustomToolCall(call.id, CustomCall(call.custom.name, call.custom.input))


class ResponseMessage(ResponseStruct):
    """The assistant's answer: ``content`` and ``refusal`` are always sent, null or not."""

    role: Literal["assistant"] = _always("assistant")
    content: str | None = _NULL
    refusal: str | None = _NULL
    tool_calls: _Calls | None = None
    function_call: _Call | None = None

    def __post_init__(self) -> None:
        calls = self.tool_calls
        if calls and type(calls[0]) not in _CANONICAL:
            self.tool_calls = [_canonical(call) for call in calls]
        legacy = self.function_call
        if legacy and type(legacy) is not FunctionCall:
            self.function_call = FunctionCall(legacy.name, legacy.arguments)


_CANONICAL = (FunctionToolCall, CustomToolCall)


NULL_LOGPROBS = msgspec.Raw(b"null")
"""``logprobs`` when a backend gives none; an upstream's log probabilities pass through raw."""


class Choice(ResponseStruct):
    """One answer; ``logprobs`` is an upstream's log probabilities as raw JSON."""

    index: int
    message: ResponseMessage
    finish_reason: FinishReason = _always("stop")
    logprobs: msgspec.Raw = _always(NULL_LOGPROBS)


class ChatResponse(ResponseStruct):
    """A ``chat.completion``."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = _always("chat.completion")
    system_fingerprint: str | None = None
    service_tier: str | None = None
    session_id: str | None = None


class FunctionCallDelta(ResponseStruct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(ResponseStruct):
    """A piece of a tool call; ``index`` says which call it continues."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(ResponseStruct):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(ResponseStruct):
    """One choice of a chunk; ``finish_reason`` and ``logprobs`` are sent as null until set."""

    index: int
    delta: Delta
    finish_reason: FinishReason | None = _NULL
    logprobs: msgspec.Raw = _always(NULL_LOGPROBS)


class ChatChunk(ResponseStruct):
    """A ``chat.completion.chunk``; the usage chunk has ``choices == []``."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: Literal["chat.completion.chunk"] = _always("chat.completion.chunk")
    usage: Usage | None = None
    system_fingerprint: str | None = None
    session_id: str | None = None
