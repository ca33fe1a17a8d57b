"""A backend's compatibility matrix, compiled once and applied to each request.

Field names are paths. Top-level request fields go by their names (``n``,
``max_tokens``); sub-features are rows of their own:

=============================  =================================================
``role.<role>``                a message role (``role.function``)
``content.<type>``             a content part type (``content.input_file``)
``content.image_url.detail``   an image part's ``detail``
``response_format.<type>``     a response format (``response_format.json_schema``)
``tool_choice.<form>``         a tool choice (``tool_choice.required``, ``tool_choice.function``)
``tools.<type>``               a tool definition type (``tools.custom``)
``stream_options.<option>``    a stream option (``stream_options.include_usage``)
``vlmrun.domain``              the VLM agents extensions
``vlmrun.metadata``
=============================  =================================================

A sub-feature no rule names follows its parent field. A top-level field no rule
names, and any field the canonical model does not know, follows the matrix's
``unknown`` policy. Only fields the client sent are looked at.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from msgspec import UNSET

from ..errors import UnsupportedFieldError
from ..model import ChatRequest, ImagePart, Part, set_unknown_fields, tag_of, unknown_fields
from .rules import Rule, Treatment

__all__ = ["REQUEST_FIELDS", "Action", "Matrix", "Mode", "Report"]

log = logging.getLogger("translator.compat")

REQUEST_FIELDS: tuple[str, ...] = ChatRequest.__struct_fields__
"""Every top-level field the canonical model knows, in declaration order."""

_SUB_FEATURE_PARENTS = {
    "role": "messages",
    "content": "messages",
    "response_format": "response_format",
    "tool_choice": "tool_choice",
    "tools": "tools",
    "stream_options": "stream_options",
    "vlmrun": "vlmrun",
}


class Mode(enum.StrEnum):
    """Strict mode refuses rejected fields; lenient mode drops and reports them."""

    STRICT = "strict"
    LENIENT = "lenient"


class Action(msgspec.Struct, frozen=True):
    """Something the matrix did to a request: ``path`` is where, in the request."""

    path: str
    field: str
    treatment: Treatment
    reason: str


class Report(msgspec.Struct):
    """What applying a matrix did: the fields dropped (ignored or relaxed) and emulated."""

    backend: str
    actions: list[Action] = msgspec.field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        """Paths dropped before the backend saw them (ignored, or rejected in lenient mode)."""
        return [a.path for a in self.actions if a.treatment is not Treatment.EMULATED]

    @property
    def emulated(self) -> list[str]:
        """Fields the translator does for the backend (``stream``, ...)."""
        return [a.field for a in self.actions if a.treatment is Treatment.EMULATED]

    def emulates(self, field: str) -> bool:
        """Whether ``field`` is emulated for this request."""
        return any(a.field == field and a.treatment is Treatment.EMULATED for a in self.actions)


class Matrix:
    """How one backend treats every request field, compiled for fast application."""

    def __init__(
        self,
        backend: str,
        rules: Iterable[Rule],
        *,
        unknown: Treatment = Treatment.REJECTED,
        mode: Mode = Mode.STRICT,
    ) -> None:
        self.backend = backend
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.unknown = unknown
        self.mode = mode
        by_field: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_field.setdefault(rule.field, []).append(rule)
        # Conditional rules are tried before a rule that holds for any value.
        self._by_field = {
            field: tuple(sorted(rules, key=lambda r: r.when is None))
            for field, rules in by_field.items()
        }
        self._unknown_rule = Rule("*", unknown, "not a field this backend knows")
        self._top_checks = tuple(
            (name, self._by_field.get(name, (self._unknown_rule,)))
            for name in REQUEST_FIELDS
            if self._needs_check(name)
        )
        self._check_messages = any(
            f.startswith(("role.", "content.")) and self._is_active(f) for f in self._by_field
        )

    # -- building ---------------------------------------------------------

    def with_overrides(self, rules: Iterable[Rule]) -> Matrix:
        """A copy in which ``rules`` replace every rule for the fields they name."""
        extra = tuple(rules)
        replaced = {r.field for r in extra}
        kept = [r for r in self.rules if r.field not in replaced]
        return Matrix(self.backend, [*kept, *extra], unknown=self.unknown, mode=self.mode)

    def with_mode(self, mode: Mode) -> Matrix:
        """A copy applied in ``mode``."""
        if mode is self.mode:
            return self
        return Matrix(self.backend, self.rules, unknown=self.unknown, mode=mode)

    def fields(self) -> set[str]:
        """Every field some rule names."""
        return set(self._by_field)

    def decide(self, field: str, value: Any = None) -> Rule | None:
        """The rule for ``field`` with ``value``, or None when no rule names it."""
        for rule in self._by_field.get(field, ()):
            if rule.holds(value):
                return rule
        return None

    def treatment(self, field: str, value: Any = None) -> Treatment:
        """How ``field`` with ``value`` is treated, the unknown policy included."""
        rule = self.decide(field, value)
        if rule is None and "." in field:
            parent = _SUB_FEATURE_PARENTS.get(field.split(".", 1)[0])
            if parent is not None:
                return self.treatment(parent)
        return self.unknown if rule is None else rule.treatment

    def _is_active(self, field: str) -> bool:
        return any(r.treatment is not Treatment.SUPPORTED for r in self._by_field.get(field, ()))

    def _needs_check(self, name: str) -> bool:
        if name not in self._by_field:
            return self.unknown is not Treatment.SUPPORTED or self._has_sub_rules(name)
        return self._is_active(name) or self._has_sub_rules(name)

    def _has_sub_rules(self, name: str) -> bool:
        prefix = name + "."
        return any(f.startswith(prefix) and self._is_active(f) for f in self._by_field)

    # -- applying ---------------------------------------------------------

    def apply(self, request: ChatRequest, *, mode: Mode | None = None) -> Report:
        """Check what ``request`` sent against the matrix, dropping what it does not keep.

        Raises :class:`UnsupportedFieldError` for a rejected field in strict mode.
        The request is changed in place; the report says how.
        """
        report = Report(self.backend)
        lenient = (mode or self.mode) is Mode.LENIENT
        for name, rules in self._top_checks:
            value = getattr(request, name)
            if value is UNSET:
                continue
            rule = _first(rules, value)
            if rule is not None and rule.treatment is not Treatment.SUPPORTED:
                self._act(rule, name, name, value, report, lenient)
                setattr(request, name, UNSET)
                continue
            sub = _SUB_CHECKS.get(name)
            if sub is not None:
                sub(self, request, report, lenient)
        if self._check_messages:
            self._apply_messages(request, report, lenient)
        extra = unknown_fields(request)
        if extra:
            self._apply_unknown(request, extra, report, lenient)
        if report.actions:
            log.info(
                "compat %s: %s",
                self.backend,
                ", ".join(f"{a.path} {a.treatment}" for a in report.actions),
            )
        return report

    def _act(
        self,
        rule: Rule,
        field: str,
        path: str,
        value: Any,
        report: Report,
        lenient: bool,
        *,
        unknown: bool = False,
    ) -> None:
        """Record ``rule`` acting at ``path``; raise if it rejects in strict mode."""
        if rule.treatment is Treatment.REJECTED and not lenient:
            raise _rejection(self.backend, rule, field, path, value, unknown=unknown)
        report.actions.append(Action(path, field, rule.treatment, rule.reason))

    def _sub(self, field: str, value: Any) -> Rule | None:
        rule = self.decide(field, value)
        if rule is None or rule.treatment is Treatment.SUPPORTED:
            return None
        return rule

    def _apply_messages(self, request: ChatRequest, report: Report, lenient: bool) -> None:
        kept_messages: list[Any] = []
        for i, message in enumerate(request.messages):
            role = tag_of(message)
            rule = self._sub(f"role.{role}", role)
            if rule is not None:
                self._act(rule, f"role.{role}", f"messages[{i}]", role, report, lenient)
                continue
            kept_messages.append(message)
            content = getattr(message, "content", None)
            if isinstance(content, list):
                self._apply_parts(content, i, report, lenient)
        if len(kept_messages) != len(request.messages):
            request.messages = kept_messages

    def _apply_parts(self, parts: list[Part], i: int, report: Report, lenient: bool) -> None:
        dropped: list[int] = []
        for j, part in enumerate(parts):
            tag = tag_of(part)
            rule = self._sub(f"content.{tag}", tag)
            if rule is not None:
                path = f"messages[{i}].content[{j}]"
                self._act(rule, f"content.{tag}", path, tag, report, lenient)
                dropped.append(j)
            elif isinstance(part, ImagePart) and part.image_url.detail is not UNSET:
                detail = part.image_url.detail
                rule = self._sub("content.image_url.detail", detail)
                if rule is not None:
                    path = f"messages[{i}].content[{j}].image_url.detail"
                    self._act(rule, rule.field, path, detail, report, lenient)
                    part.image_url.detail = UNSET
        for j in reversed(dropped):
            del parts[j]

    def _apply_unknown(
        self, request: ChatRequest, extra: Any, report: Report, lenient: bool
    ) -> None:
        if self.unknown is Treatment.SUPPORTED:
            return
        for name in extra:
            rule = self.decide(name) or self._unknown_rule
            if rule.treatment is Treatment.SUPPORTED:
                continue
            self._act(rule, name, name, None, report, lenient, unknown=rule is self._unknown_rule)
        kept = {k: v for k, v in extra.items() if self.treatment(k) is Treatment.SUPPORTED}
        set_unknown_fields(request, kept)


def _first(rules: tuple[Rule, ...], value: Any) -> Rule | None:
    for rule in rules:
        if rule.holds(value):
            return rule
    return None


def _rejection(
    backend: str, rule: Rule, field: str, path: str, value: Any, *, unknown: bool
) -> UnsupportedFieldError:
    if unknown:
        return UnsupportedFieldError(
            f"Unrecognized request argument supplied: {field}",
            param=path,
            code="unsupported_parameter",
        )
    if rule.when is not None:
        shown = msgspec.json.encode(value).decode() if _is_scalar(value) else "this value"
        return UnsupportedFieldError(
            f"The {backend} backend does not support '{field}' {rule.describe_when()} "
            f"(got {shown}): {rule.reason}.",
            param=path,
            code="unsupported_value",
        )
    code = "unsupported_value" if "." in field and path != field else "unsupported_parameter"
    return UnsupportedFieldError(
        f"The {backend} backend does not support '{field}': {rule.reason}.",
        param=path,
        code=code,
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# -- sub-feature checks of top-level fields ---------------------------------


def _check_response_format(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    tag = tag_of(request.response_format)
    rule = m._sub(f"response_format.{tag}", tag)
    if rule is not None:
        m._act(rule, rule.field, "response_format.type", tag, report, lenient)
        request.response_format = UNSET


def _check_tool_choice(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    choice = request.tool_choice
    form = choice if isinstance(choice, str) else tag_of(choice)
    rule = m._sub(f"tool_choice.{form}", form)
    if rule is not None:
        m._act(rule, rule.field, "tool_choice", form, report, lenient)
        request.tool_choice = UNSET


def _check_tools(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    tools = request.tools
    assert tools is not UNSET
    kept = []
    for i, tool in enumerate(tools):
        tag = tag_of(tool)
        rule = m._sub(f"tools.{tag}", tag)
        if rule is None:
            kept.append(tool)
        else:
            m._act(rule, rule.field, f"tools[{i}].type", tag, report, lenient)
    if len(kept) != len(tools):
        request.tools = kept if kept else UNSET


def _check_stream_options(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    options = request.stream_options
    if options is None or options is UNSET:
        return
    for option in options.__struct_fields__:
        value = getattr(options, option)
        if value is UNSET:
            continue
        rule = m._sub(f"stream_options.{option}", value)
        if rule is not None:
            m._act(rule, rule.field, f"stream_options.{option}", value, report, lenient)
            setattr(options, option, UNSET)


def _check_vlmrun(m: Matrix, request: ChatRequest, report: Report, lenient: bool) -> None:
    vlmrun = request.vlmrun
    assert vlmrun is not UNSET
    for name in ("domain", "metadata"):
        value = getattr(vlmrun, name)
        if value is UNSET:
            continue
        rule = m._sub(f"vlmrun.{name}", value)
        if rule is not None:
            m._act(rule, rule.field, f"vlmrun.{name}", value, report, lenient)
            setattr(vlmrun, name, UNSET)


_SUB_CHECKS: dict[str, Callable[[Matrix, ChatRequest, Report, bool], None]] = {
    "response_format": _check_response_format,
    "tool_choice": _check_tool_choice,
    "tools": _check_tools,
    "stream_options": _check_stream_options,
    "vlmrun": _check_vlmrun,
}
