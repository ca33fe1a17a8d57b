"""The sub-feature rows of top-level fields: response formats, tool choices, tools,
stream options and the VLM agents extensions, each checked in its own way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from msgspec import UNSET

from ..model import ChatRequest, StreamOptions, VlmRun, tag_of
from .fields import REQUEST_FIELDS
from .report import Report
from .rules import Treatment

if TYPE_CHECKING:
    from .matrix import Matrix

__all__ = ["SUB_CHECKS", "SubCheck"]

SubCheck = Callable[["Matrix", ChatRequest, Report, bool], None]


def _check_response_format(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    tag = tag_of(request.response_format)
    rule = m.sub_rule(f"response_format.{tag}", tag)
    if rule is not None:
        m.act(rule, rule.field, "response_format", tag, report, lenient)
        if rule.treatment is not Treatment.EMULATED:
            request.response_format = UNSET


def _check_tool_choice(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    choice = request.tool_choice
    form = choice if isinstance(choice, str) else tag_of(choice)
    rule = m.sub_rule(f"tool_choice.{form}", form)
    if rule is not None:
        m.act(rule, rule.field, "tool_choice", form, report, lenient)
        if rule.treatment is not Treatment.EMULATED:
            request.tool_choice = UNSET


def _check_tools(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    tools = request.tools
    assert tools is not UNSET
    kept = []
    for i, tool in enumerate(tools):
        tag = tag_of(tool)
        rule = m.sub_rule(f"tools.{tag}", tag)
        if rule is not None:
            m.act(rule, rule.field, f"tools[{i}]", tag, report, lenient)
        if rule is None or rule.treatment is Treatment.EMULATED:
            kept.append(tool)
    if len(kept) != len(tools):
        request.tools = kept if kept else UNSET


_STREAM_OPTION_ROWS = tuple((o, f"stream_options.{o}") for o in StreamOptions.__struct_fields__)
_VLMRUN_ROWS = tuple((f, f"vlmrun.{f}") for f in VlmRun.__struct_fields__)


def _check_stream_options(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    options = request.stream_options
    if options is None or options is UNSET:
        return
    for option, row in _STREAM_OPTION_ROWS:
        value = getattr(options, option)
        if value is UNSET:
            continue
        rule = m.sub_rule(row, value)
        if rule is not None:
            m.act(rule, rule.field, f"stream_options.{option}", value, report, lenient)
            setattr(options, option, UNSET)


def _check_vlmrun(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    vlmrun = request.vlmrun
    assert vlmrun is not UNSET
    for name, row in _VLMRUN_ROWS:
        value = getattr(vlmrun, name)
        if value is UNSET:
            continue
        rule = m.sub_rule(row, value)
        if rule is not None:
            m.act(rule, rule.field, f"vlmrun.{name}", value, report, lenient)
            setattr(vlmrun, name, UNSET)


def _no_sub_check(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    """Sub-feature rows of a field the canonical model does not look into."""


SUB_CHECKS: dict[str, SubCheck] = {name: _no_sub_check for name in REQUEST_FIELDS}
SUB_CHECKS |= {
    "response_format": _check_response_format,
    "tool_choice": _check_tool_choice,
    "tools": _check_tools,
    "stream_options": _check_stream_options,
    "vlmrun": _check_vlmrun,
}
