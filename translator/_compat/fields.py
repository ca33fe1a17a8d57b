"""The field paths a matrix can name, read from the canonical model once at import.

Top-level request fields go by their names (``n``, ``max_tokens``); sub-features
are rows of their own:

=============================  =================================================
``role.<role>``                a message role (``role.function``)
``content.<type>``             a content part type (``content.input_file``)
``content.image_url.detail``   an image part's ``detail``
``response_format.<type>``     a response format (``response_format.json_schema``)
``tool_choice.<form>``         a tool choice (``tool_choice.required``, ``tool_choice.function``)
``tools.<type>``               a tool definition type (``tools.custom``)
``stream_options.<option>``    a stream option (``stream_options.include_usage``)
``vlmrun.<field>``             the VLM agents extensions (``vlmrun.domain``, ``vlmrun.metadata``)
=============================  =================================================
"""

from __future__ import annotations

import typing

from .._model import (
    AssistantPart,
    ChatRequest,
    Message,
    ResponseFormat,
    StreamOptions,
    Tool,
    ToolChoice,
    UserPart,
    VlmRun,
)

__all__ = [
    "PART_CLASSES",
    "PART_TYPES",
    "REQUEST_FIELDS",
    "REQUIRED_FIELDS",
    "ROLES",
    "ROLE_TYPES",
    "SUB_FEATURES",
    "VALUE_ROWS",
    "parent_of",
]


def _classes(union: object) -> dict[str, type]:
    return {member.__struct_config__.tag: member for member in typing.get_args(union)}


def _tags(union: object) -> tuple[str, ...]:
    found: list[str] = []
    for member in typing.get_args(union):
        if typing.get_origin(member) is typing.Literal:
            found.extend(typing.get_args(member))
        else:
            found.append(member.__struct_config__.tag)
    return tuple(dict.fromkeys(found))


REQUEST_FIELDS: tuple[str, ...] = ChatRequest.__struct_fields__
"""Every top-level field the canonical model knows, in declaration order."""

REQUIRED_FIELDS = frozenset({"model", "messages"})
"""Fields every backend must take: a matrix cannot drop or refuse them."""

ROLES: tuple[str, ...] = _tags(Message)
"""Every message role (``system``, ``user``, ``assistant``, ...)."""

PART_TYPES: tuple[str, ...] = _tags(UserPart | AssistantPart)
"""Every content part type, the VLM agents extensions included."""

ROLE_TYPES: dict[str, type] = _classes(Message)
"""The message struct of each role."""

PART_CLASSES: dict[str, type] = _classes(UserPart | AssistantPart)
"""The part struct of each content part type."""

VALUE_ROWS = frozenset({"role", "content", "response_format", "tool_choice", "tools"})
"""Prefixes whose ``<prefix>.<name>`` rows are about one value (a type, a role, a form)."""

SUB_FEATURES: tuple[str, ...] = (
    *(f"role.{r}" for r in ROLES),
    *(f"content.{t}" for t in PART_TYPES),
    "content.image_url.detail",
    *(f"response_format.{t}" for t in _tags(ResponseFormat)),
    *(f"tool_choice.{f}" for f in _tags(ToolChoice)),
    *(f"tools.{t}" for t in _tags(Tool)),
    *(f"stream_options.{o}" for o in StreamOptions.__struct_fields__),
    *(f"vlmrun.{f}" for f in VlmRun.__struct_fields__),
)
"""Every sub-feature row a matrix may name."""

_TOP_PARENT = {"role": "messages", "content": "messages"}


def parent_of(field: str) -> str | None:
    """The row a sub-feature falls back to when no rule names it, or None at the top.

    ``content.image_url.detail`` -> ``content.image_url`` -> ``messages``;
    ``stream_options.include_usage`` -> ``stream_options``.
    """
    head, dot, _ = field.rpartition(".")
    if not dot:
        return None
    if "." in head:
        return head
    return _TOP_PARENT.get(head, head)
