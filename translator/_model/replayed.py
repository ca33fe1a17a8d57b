"""What clients send back that asks for nothing: the one policy for every backend.

Frameworks replay the previous answer as the next turn's assistant message,
and fill optional fields with explicit defaults. None of it changes the
answer, so none of it is refused:

- **Null, or an empty container, for an optional top-level field** (``tools:
  null``, ``tool_choice: null``, ``stop: []``, ``logit_bias: {}``,
  ``metadata: {}``) is the same as leaving the field out. A null the model
  has a place for (``temperature: null``) is kept as null, which every matrix
  takes as asking for nothing; the others (:data:`NULL_IS_ABSENT`) are left
  out when the request is decoded, as are the empty containers of
  :data:`EMPTY_IS_ABSENT` (an empty ``prediction`` still asks for something
  malformed, and an empty ``messages`` for nothing to answer).
- **Null for an optional message field** on a replayed assistant message, as
  ``ChatCompletionMessage.model_dump()`` gives it (``tool_calls``,
  ``function_call``, ``audio``, ``refusal``), asks for nothing: ``tool_calls:
  null``, which OpenAI's own types do not allow, is left out; the others are
  kept as the nulls OpenAI allows.
- **Output fields replayed as input** (:data:`REPLAYED`: an assistant's
  ``annotations``, ``reasoning_content`` and ``reasoning``; a tool message's
  ``name``) are taken off the request before any backend sees it and reported
  as ignored (``x-translator-ignored``, the :class:`~translator._compat.Report`):
  no backend acts on them.

Everything else a client sends is judged by the backend's matrix.

The canonical :class:`ChatRequest` has no place for the nulls, empty
containers and output fields left out above, so a body without them decodes
in one typed pass. :class:`ReplayedRequest` is the request
as clients may send it; a body the canonical model refuses is decoded as one,
and :func:`settle` turns it into the canonical request, keeping the paths of
the replayed fields beside it for the matrix to report.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType
from msgspec.structs import astuple

from .messages import (
    AssistantMessage,
    DeveloperMessage,
    FunctionMessage,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from .request import (
    ChatRequest,
    LogitBias,
    MetadataMap,
    Modalities,
    StopList,
    Tools,
    set_replayed,
)
from .tools import ToolCall

__all__ = [
    "EMPTY_IS_ABSENT",
    "NULL_IS_ABSENT",
    "REPLAYED",
    "REPLAYED_REASON",
    "ReplayedAssistantMessage",
    "ReplayedRequest",
    "ReplayedToolMessage",
    "settle",
]


class ReplayedAssistantMessage(AssistantMessage, tag="assistant"):
    """An assistant message as a client replays it from an earlier answer."""

    tool_calls: list[ToolCall] | UnsetType | None = UNSET  # type: ignore[assignment]
    annotations: msgspec.Raw | UnsetType = UNSET
    reasoning_content: msgspec.Raw | UnsetType = UNSET
    reasoning: msgspec.Raw | UnsetType = UNSET


class ReplayedToolMessage(ToolMessage, tag="tool"):
    """A tool message as some clients send it: with the tool's name."""

    name: str | UnsetType = UNSET


ReplayedMessage = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | ReplayedAssistantMessage
    | ReplayedToolMessage
    | FunctionMessage
)


class ReplayedRequest(ChatRequest):
    """A request as clients may send it: replayed messages, and containers sent empty.

    Everything else is typed as in :class:`ChatRequest`, so a body wrong in
    some other way is refused at the same place either way.
    """

    messages: Annotated[list[ReplayedMessage], Meta(min_length=1)]  # type: ignore[assignment]
    logit_bias: LogitBias | UnsetType | None = UNSET
    metadata: MetadataMap | UnsetType | None = UNSET
    modalities: Modalities | UnsetType | None = UNSET
    stop: str | StopList | UnsetType | None = UNSET
    tools: Tools | UnsetType = UNSET


def _nullable(hint: object) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    args = typing.get_args(hint)
    return hint is None or hint is types.NoneType or any(_nullable(a) for a in args)


NULL_IS_ABSENT: Final = frozenset(
    name
    for name, hint in typing.get_type_hints(ChatRequest, include_extras=True).items()
    if name not in ("model", "messages") and not _nullable(hint)
)
"""Top-level fields the model has no null for (``tools``, ``tool_choice``, ``user``, ...):
null is left out when decoding, the same as not sending them."""

EMPTY_IS_ABSENT: Final = frozenset(
    {"functions", "logit_bias", "metadata", "modalities", "stop", "tools"}
)
"""Top-level fields for which an empty array or object asks for nothing."""

_CANONICAL: Final[dict[type[msgspec.Struct], type[AssistantMessage | ToolMessage]]] = {
    ReplayedAssistantMessage: AssistantMessage,
    ReplayedToolMessage: ToolMessage,
}
"""The canonical message of each replayed one; its fields come first, in the same order."""

REPLAYED: Final[dict[type[msgspec.Struct], tuple[str, ...]]] = {
    canonical: replayed.__struct_fields__[len(canonical.__struct_fields__) :]
    for replayed, canonical in _CANONICAL.items()
}
"""Fields of a message that only an answer carries: dropped and reported."""

REPLAYED_REASON: Final = "an output field replayed as input; no backend acts on it"

_SETTLE: Final = {
    replayed: (canonical, len(canonical.__struct_fields__), REPLAYED[canonical])
    for replayed, canonical in _CANONICAL.items()
}
"""For each replayed message: its canonical message, how many fields they share
(the first ones), and the replayed fields' names."""


def settle(request: ReplayedRequest) -> ChatRequest:
    """The canonical request for ``request``: without what asks for nothing or was replayed.

    The paths of the replayed fields taken (``messages[1].annotations``) are
    kept beside it (:func:`~.request.replayed_fields`) for the matrix to
    report; the nulls and empty containers are forgotten, as if never sent.
    """
    # Same fields in the same order: the values move over as they are.
    settled = ChatRequest(*astuple(request))
    settled.__dict__.update(request.__dict__)
    for name in EMPTY_IS_ABSENT:
        value = getattr(settled, name)
        if (type(value) is list or type(value) is dict) and not value:
            setattr(settled, name, UNSET)
    taken: list[str] = []
    messages = settled.messages
    for i, message in enumerate(messages):
        how = _SETTLE.get(type(message))
        if how is None:
            continue
        canonical, kept, names = how
        for name in names:
            if getattr(message, name) is not UNSET:
                taken.append(f"messages[{i}].{name}")
        plain = canonical(*astuple(message)[:kept])
        if type(plain) is AssistantMessage and plain.tool_calls is None:
            plain.tool_calls = UNSET
        messages[i] = plain
    if taken:
        set_replayed(settled, taken)
    return settled
