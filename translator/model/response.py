"""The canonical chat response, stream chunk and usage.

Field names follow the OpenAI ``chat.completion`` and ``chat.completion.chunk``
objects, so encoding is one ``msgspec`` pass. Backend-specific usage (an agent's
credits, steps and duration) rides in :class:`Usage` beside the token counts.

These structs are tolerant: backends decode upstream replies with them, and a
key an upstream adds is ignored. The tool calls of a reply are the request
model's own (an answer goes back into the conversation), which refuse unknown
keys; a reply is decoded through tolerant twins of them instead, which
:class:`ResponseMessage` turns back into the canonical calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from msgspec import UNSET, UnsetType

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
    "ToolCallDelta",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | UnsetType = UNSET
    audio_tokens: int | UnsetType = UNSET


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int | UnsetType = UNSET
    audio_tokens: int | UnsetType = UNSET
    accepted_prediction_tokens: int | UnsetType = UNSET
    rejected_prediction_tokens: int | UnsetType = UNSET


class Usage(msgspec.Struct):
    """Token counts, plus what an agent backend reports about its work."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | UnsetType = UNSET
    completion_tokens_details: CompletionTokensDetails | UnsetType = UNSET
    credits_used: float | UnsetType = UNSET
    steps: int | UnsetType = UNSET
    duration_seconds: float | UnsetType = UNSET
    estimated: bool | UnsetType = UNSET

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


class ResponseMessage(msgspec.Struct):
    """The assistant's answer."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: _Calls | UnsetType = UNSET
    function_call: _Call | UnsetType = UNSET

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


class Choice(msgspec.Struct):
    index: int
    message: ResponseMessage
    finish_reason: FinishReason = "stop"
    logprobs: msgspec.Raw = NULL_LOGPROBS


class ChatResponse(msgspec.Struct):
    """A ``chat.completion``."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
    session_id: str | UnsetType = UNSET


class FunctionCallDelta(msgspec.Struct):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallDelta(msgspec.Struct):
    """A piece of a tool call; ``index`` says which call it continues."""

    index: int
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET
    function: FunctionCallDelta | UnsetType = UNSET


class Delta(msgspec.Struct):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: msgspec.Raw = NULL_LOGPROBS


class ChatChunk(msgspec.Struct):
    """A ``chat.completion.chunk``; the usage chunk has ``choices == []``."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET
    session_id: str | UnsetType = UNSET
