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
  as ignored (``x-translator-ignored``, the :class:`~translator.compat.Report`):
  no backend acts on them.

Everything else a client sends is judged by the backend's matrix.
"""

from __future__ import annotations

import types
import typing
from typing import Final

from msgspec import UNSET

from .messages import AssistantMessage, Message, ToolMessage
from .request import ChatRequest

__all__ = ["EMPTY_IS_ABSENT", "NULL_IS_ABSENT", "REPLAYED", "REPLAYED_REASON", "take_replayed"]


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

REPLAYED: Final[dict[type, tuple[str, ...]]] = {
    AssistantMessage: ("annotations", "reasoning_content", "reasoning"),
    ToolMessage: ("name",),
}
"""Fields of a message that only an answer carries: dropped and reported."""

REPLAYED_REASON: Final = "an output field replayed as input; no backend acts on it"


def take_replayed(messages: list[Message]) -> list[str]:
    """Drop what :data:`REPLAYED` names from ``messages``, nulls of optional fields too.

    Returns the paths of the replayed fields taken (``messages[1].annotations``),
    for the caller to report; the nulls are forgotten, as if never sent.
    """
    taken: list[str] = []
    i = -1
    for message in messages:
        i += 1
        kind = type(message)
        names = REPLAYED.get(kind)
        if names is None:
            continue
        for name in names:
            if getattr(message, name) is not UNSET:
                setattr(message, name, UNSET)
                taken.append(f"messages[{i}].{name}")
        if type(message) is AssistantMessage and message.tool_calls is None:
            message.tool_calls = UNSET
    return taken
