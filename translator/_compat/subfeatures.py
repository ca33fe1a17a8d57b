"""The sub-feature rows of top-level fields: response formats, tool choices, tools,
stream options and the VLM agents extensions, each checked in its own way."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from .._model import ChatRequest, StreamOptions, VlmRun, tag_of
from .applier import Applier
from .checks import SubCheck
from .fields import REQUEST_FIELDS
from .report import Action
from .rules import Treatment

__all__ = ["SUB_CHECKS", "SubCheck"]


def _check_response_format(
    m: Applier, request: ChatRequest, actions: list[Action], lenient: bool
) -> None:
    tag = tag_of(request.response_format)
    rule = m.sub_rule(f"response_format.{tag}", tag)
    if rule is not None:
        m.act(rule, rule.field, "response_format", tag, actions, lenient)
        if rule.treatment is not Treatment.EMULATED:
            request.response_format = UNSET


def _check_tool_choice(
    m: Applier, request: ChatRequest, actions: list[Action], lenient: bool
) -> None:
    choice = request.tool_choice
    form = choice if isinstance(choice, str) else tag_of(choice)
    rule = m.sub_rule(f"tool_choice.{form}", form)
    if rule is not None:
        m.act(rule, rule.field, "tool_choice", form, actions, lenient)
        if rule.treatment is not Treatment.EMULATED:
            request.tool_choice = UNSET


def _check_tools(m: Applier, request: ChatRequest, actions: list[Action], lenient: bool) -> None:
    tools = request.tools
    assert tools is not UNSET
    kept = []
    for i, tool in enumerate(tools):
        tag = tag_of(tool)
        rule = m.sub_rule(f"tools.{tag}", tag)
        if rule is not None:
            m.act(rule, rule.field, f"tools[{i}]", tag, actions, lenient)
        if rule is None or rule.treatment is Treatment.EMULATED:
            kept.append(tool)
    if len(kept) != len(tools):
        request.tools = kept if kept else UNSET


_Rows = tuple[tuple[str, str], ...]


def _option_rows(field: str, struct: type[msgspec.Struct]) -> _Rows:
    return tuple((name, f"{field}.{name}") for name in struct.__struct_fields__)


_STREAM_OPTION_ROWS = _option_rows("stream_options", StreamOptions)
_VLMRUN_ROWS = _option_rows("vlmrun", VlmRun)


def _check_options(
    m: Applier, options: Any, rows: _Rows, actions: list[Action], lenient: bool
) -> None:
    """Apply the rows of a struct's own fields (``stream_options.include_usage``)."""
    for name, row in rows:
        value = getattr(options, name)
        if value is UNSET:
            continue
        rule = m.sub_rule(row, value)
        if rule is not None:
            m.act(rule, rule.field, row, value, actions, lenient)
            setattr(options, name, UNSET)


def _check_stream_options(
    m: Applier, request: ChatRequest, actions: list[Action], lenient: bool
) -> None:
    options = request.stream_options
    if options is not None and options is not UNSET:
        _check_options(m, options, _STREAM_OPTION_ROWS, actions, lenient)


def _check_vlmrun(m: Applier, request: ChatRequest, actions: list[Action], lenient: bool) -> None:
    assert request.vlmrun is not UNSET
    _check_options(m, request.vlmrun, _VLMRUN_ROWS, actions, lenient)


def _no_sub_check(m: Applier, request: ChatRequest, actions: list[Action], lenient: bool) -> None:
    """Sub-feature rows of a field the canonical model does not look into."""


SUB_CHECKS: dict[str, SubCheck] = {name: _no_sub_check for name in REQUEST_FIELDS}
SUB_CHECKS |= {
    "response_format": _check_response_format,
    "tool_choice": _check_tool_choice,
    "tools": _check_tools,
    "stream_options": _check_stream_options,
    "vlmrun": _check_vlmrun,
}
