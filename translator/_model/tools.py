"""Tools the model may call, the calls it makes, and how the caller steers them.

JSON Schemas (function parameters, custom grammars) stay ``msgspec.Raw``:
they are carried to the backend byte for byte, never parsed on the hot path;
only their first byte is checked to be the ``{`` of an object, and their text
to be UTF-8 (msgspec checks the strings it decodes, not raw JSON).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .strict import Strict

__all__ = [
    "AllowedTools",
    "AllowedToolsChoice",
    "CustomCall",
    "CustomDefinition",
    "CustomFormatGrammar",
    "CustomFormatText",
    "CustomTool",
    "CustomToolCall",
    "FunctionCall",
    "FunctionCallOption",
    "FunctionDefinition",
    "FunctionName",
    "FunctionTool",
    "FunctionToolCall",
    "Grammar",
    "NamedCustomChoice",
    "NamedFunctionChoice",
    "Tool",
    "ToolCall",
    "ToolChoice",
]


Identifier = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
"""A function's name as OpenAI documents it: letters, digits, ``_`` and ``-``, at most 64."""

_KINDS = {ord("["): "array", ord('"'): "str", ord("t"): "bool", ord("f"): "bool", ord("n"): "null"}


NOT_UTF8 = "Text is not valid UTF-8"
"""The message of the ``ValueError`` :func:`require_utf8` raises, after the field."""


def require_object(raw: msgspec.Raw | UnsetType, field: str) -> None:
    """Raise ``ValueError`` unless ``raw`` (when set) holds a JSON object in UTF-8.

    Called from ``__post_init__``, which msgspec turns into a validation error
    at the struct's path; only the first byte is looked at, nothing is parsed.
    """
    if raw is UNSET:
        return
    view = memoryview(raw)
    first = next((b for b in view[:16] if b not in b" \t\r\n"), None)
    if first != ord("{"):
        got = _KINDS.get(first, "float") if first is not None else "nothing"
        raise ValueError(f"Field `{field}`: Expected `object`, got `{got}`")
    require_utf8(raw, field)


def require_utf8(raw: msgspec.Raw, field: str) -> None:
    """Raise ``ValueError`` unless the raw JSON's text is valid UTF-8."""
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"Field `{field}`: {NOT_UTF8}") from None


class FunctionDefinition(Strict):
    name: Identifier
    description: str | UnsetType = UNSET
    parameters: msgspec.Raw | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        require_object(self.parameters, "parameters")


class Grammar(Strict):
    definition: str
    syntax: Literal["lark", "regex"]


class CustomFormat(Strict, tag_field="type"):
    """Base of a custom tool's input format."""


class CustomFormatText(CustomFormat, tag="text"):
    pass


class CustomFormatGrammar(CustomFormat, tag="grammar"):
    grammar: Grammar


class CustomDefinition(Strict):
    name: str
    description: str | UnsetType = UNSET
    format: CustomFormatText | CustomFormatGrammar | UnsetType = UNSET


class ToolBase(Strict, tag_field="type"):
    """Base of a tool definition."""


class FunctionTool(ToolBase, tag="function"):
    function: FunctionDefinition


class CustomTool(ToolBase, tag="custom"):
    custom: CustomDefinition


Tool = FunctionTool | CustomTool


class FunctionCall(Strict):
    """A function call: ``arguments`` is the JSON text the model produced."""

    name: str
    arguments: str


class CustomCall(Strict):
    name: str
    input: str


class ToolCallBase(Strict, tag_field="type"):
    """Base of a tool call made by the assistant."""


class FunctionToolCall(ToolCallBase, tag="function"):
    id: str
    function: FunctionCall


class CustomToolCall(ToolCallBase, tag="custom"):
    id: str
    custom: CustomCall


ToolCall = FunctionToolCall | CustomToolCall


class FunctionName(Strict):
    name: str


class ChoiceBase(Strict, tag_field="type"):
    """Base of an object form of ``tool_choice``."""


class NamedFunctionChoice(ChoiceBase, tag="function"):
    function: FunctionName


class NamedCustomChoice(ChoiceBase, tag="custom"):
    custom: FunctionName


class AllowedTools(Strict):
    mode: Literal["auto", "required"]
    tools: list[dict[str, msgspec.Raw]]

    def __post_init__(self) -> None:
        for tool in self.tools:
            for value in tool.values():
                require_utf8(value, "tools")


class AllowedToolsChoice(ChoiceBase, tag="allowed_tools"):
    allowed_tools: AllowedTools


ToolChoice = (
    Literal["none", "auto", "required"]
    | NamedFunctionChoice
    | NamedCustomChoice
    | AllowedToolsChoice
)


class FunctionCallOption(Strict):
    """The legacy ``function_call`` object form."""

    name: str
