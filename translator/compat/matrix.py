"""A backend's compatibility matrix, compiled once and applied to each request.

Rows are field paths (see :mod:`translator.compat.fields`): top-level names
(``n``), and sub-features (``content.input_audio``, ``tool_choice.required``).

- A field with rules is treated as the first rule that holds for its value
  (conditional rules first); when none holds (``n: 1`` where only ``n > 1`` has a
  rule) it is supported.
- A sub-feature no rule names follows its parent row.
- A top-level field no rule names, and any field the canonical model does not
  know, follows the matrix's ``unknown`` policy.
- ``model`` and ``messages`` are always taken.

Only fields the client sent are looked at, and rows that are plainly supported
are left out when the matrix is compiled. Ignored fields, and rejected ones in
lenient mode, are removed from the request and reported.

Emulated rows are reported too. An emulated parameter (a top-level field,
``stream_options.<option>``, ``vlmrun.<field>``, ``content.image_url.detail``)
is removed: the translator, which read it before the matrix was applied, does
the work. An emulated value (a role, a part type, a response format, a tool
choice form, a tool type) stays in place for the backend's own translation to
emulate (``role.developer`` sent as a system message, say).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any

import msgspec
from msgspec import UNSET

from ..errors import UnsupportedFieldError
from ..model import (
    ChatRequest,
    ImagePart,
    set_unknown_fields,
    unknown_fields,
)
from .fields import (
    PART_CLASSES,
    REQUEST_FIELDS,
    REQUIRED_FIELDS,
    ROLE_TYPES,
    SUB_FEATURES,
    VALUE_ROWS,
    parent_of,
)
from .report import Action, Report
from .rules import Rule, Treatment
from .subfeatures import SUB_CHECKS, SubCheck

__all__ = ["REQUEST_FIELDS", "Action", "Matrix", "Mode", "Report"]

log = logging.getLogger("translator.compat")


class Mode(enum.StrEnum):
    """Strict mode refuses rejected fields; lenient mode drops and reports them."""

    STRICT = "strict"
    LENIENT = "lenient"


_Rules = tuple[Rule, ...]


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
        self.unknown = Treatment(unknown)
        self.mode = Mode(mode)
        if self.unknown is Treatment.EMULATED:
            raise ValueError(f"{backend}: fields no rule names cannot be emulated")
        by_field: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_field.setdefault(rule.field, []).append(rule)
        # Conditional rules are tried before a rule that holds for any value.
        self._by_field: dict[str, _Rules] = {
            field: tuple(sorted(rules, key=lambda r: r.when is None))
            for field, rules in by_field.items()
        }
        for field in REQUIRED_FIELDS:
            if any(r.treatment is not Treatment.SUPPORTED for r in by_field.get(field, ())):
                raise ValueError(f"{backend}: '{field}' is required and must be supported")
        no_such = sorted(f for f in by_field if "." in f and f not in _ROWS)
        if no_such:
            raise ValueError(f"{backend}: no such matrix rows: {', '.join(no_such)}")
        self._compile()

    def _compile(self) -> None:
        active = {f: rules for f, rules in self._by_field.items() if _is_active(rules)}
        self._unknown_rule = Rule("*", self.unknown, "not a field this backend knows")
        # Active sub-feature rows, looked up by path while applying.
        self._sub_rules = {f: r for f, r in active.items() if parent_of(f) is not None}
        checks: list[tuple[str, Rule | None, _Rules, SubCheck | None]] = []
        for name in REQUEST_FIELDS:
            if name in REQUIRED_FIELDS:
                continue
            rules = active.get(name)
            if name not in self._by_field and self.unknown is not Treatment.SUPPORTED:
                rules = (self._unknown_rule,)
            prefix = name + "."
            sub = SUB_CHECKS[name] if any(f.startswith(prefix) for f in self._sub_rules) else None
            if rules is not None or sub is not None:
                checks.append((name, _fixed(rules or ()), rules or (), sub))
        self._top_checks = tuple(checks)
        self._lenient = self.mode is Mode.LENIENT
        # Which checked fields were sent is found by a function generated for this
        # matrix: one attribute test per checked field, no loop, no copies.
        self._sent = _sent_finder([check[0] for check in checks]) if checks else None
        self._role_rules = {
            ROLE_TYPES[r]: (r, _fixed(v), v) for r, v in _rows(self._sub_rules, "role.").items()
        }
        self._role_types = frozenset(self._role_rules)
        parts = _rows(self._sub_rules, "content.")
        self._detail_rules = parts.pop("image_url.detail", None)
        self._part_rules = {PART_CLASSES[t]: (t, _fixed(v), v) for t, v in parts.items()}
        self._part_types = frozenset(self._part_rules) | (
            {ImagePart} if self._detail_rules else set()
        )
        # Fields outside the model that rules name (a vendor's extension, say).
        self._extra_rules = {
            f: r for f, r in self._by_field.items() if f not in REQUEST_FIELDS and "." not in f
        }
        self._check_unknown = self.unknown is not Treatment.SUPPORTED or any(
            _is_active(r) for r in self._extra_rules.values()
        )

    # -- building ---------------------------------------------------------

    def with_overrides(self, rules: Iterable[Rule]) -> Matrix:
        """A copy in which ``rules`` replace every rule for the fields they name.

        Raises :class:`ValueError` for a sub-feature row that does not exist
        (``tool_choice.requried``), as building any matrix does.
        """
        extra = tuple(rules)
        if not extra:
            return self
        replaced = {r.field for r in extra}
        kept = [r for r in self.rules if r.field not in replaced]
        return Matrix(self.backend, [*kept, *extra], unknown=self.unknown, mode=self.mode)

    def with_mode(self, mode: Mode | str) -> Matrix:
        """A copy applied in ``mode`` by default."""
        mode = Mode(mode)
        if mode is self.mode:
            return self
        return Matrix(self.backend, self.rules, unknown=self.unknown, mode=mode)

    def renamed(self, backend: str) -> Matrix:
        """The same matrix for a backend called ``backend``."""
        if backend == self.backend:
            return self
        return Matrix(backend, self.rules, unknown=self.unknown, mode=self.mode)

    # -- asking -----------------------------------------------------------

    def fields(self) -> set[str]:
        """Every field some rule names."""
        return set(self._by_field)

    def decide(self, field: str, value: Any = None) -> Rule | None:
        """The rule for ``field`` with ``value``; None when no rule names it or none holds."""
        return _first(self._by_field.get(field, ()), value)

    def treatment(self, field: str, value: Any = None) -> Treatment:
        """How ``field`` with ``value`` is treated, fallbacks and the unknown policy included."""
        rules = self._by_field.get(field)
        if rules is not None:
            rule = _first(rules, value)
            return Treatment.SUPPORTED if rule is None else rule.treatment
        parent = parent_of(field)
        if parent is not None:
            return self.treatment(parent)
        return Treatment.SUPPORTED if field in REQUIRED_FIELDS else self.unknown

    def __repr__(self) -> str:
        return (
            f"Matrix({self.backend!r}, {len(self.rules)} rules, "
            f"unknown={self.unknown.value}, mode={self.mode.value})"
        )

    # -- applying ---------------------------------------------------------

    def apply(self, request: ChatRequest, *, mode: Mode | None = None) -> Report:
        """Check what ``request`` sent against the matrix, dropping what it does not keep.

        Raises :class:`UnsupportedFieldError` for a rejected field in strict mode.
        The request is changed in place; the report says how.
        """
        report = Report(self.backend)
        lenient = self._lenient if mode is None else mode is _LENIENT or mode == "lenient"
        if self._sent is not None:
            sent = self._sent(request)
            if sent:
                self._apply_top(request, sent, report, lenient)
        messages = request.messages
        dropped: Set[int] = _NONE
        if self._role_types and not self._role_types.isdisjoint(map(type, messages)):
            dropped = self._apply_roles(request, report, lenient)
        if self._part_types:
            # Parts are reported under their message's index as sent.
            for i, message in enumerate(messages):
                content = message.content
                if (
                    type(content) is list
                    and not self._part_types.isdisjoint(map(type, content))
                    and i not in dropped
                ):
                    self._apply_parts(content, i, report, lenient)
        # Unknown fields live in the request's __dict__ (see model.unknown_fields).
        if self._check_unknown and request.__dict__:
            extra = unknown_fields(request)
            if extra:
                self._apply_unknown(request, extra, report, lenient)
        if report.actions and log.isEnabledFor(_INFO):
            log.info("compat %s: %s", self.backend, report.describe())
        return report

    def _apply_top(
        self, request: ChatRequest, sent: list[int], report: Report, lenient: bool
    ) -> None:
        for i in sent:
            name, rule, rules, sub = self._top_checks[i]
            value = getattr(request, name)
            if rule is None:
                rule = _first(rules, value)
            if rule is not None and rule.treatment is not _SUPPORTED:
                self.act(rule, name, name, value, report, lenient)
                setattr(request, name, UNSET)
            elif sub is not None:
                sub(self, request, report, lenient)

    def act(
        self, rule: Rule, field: str, path: str, value: Any, report: Report, lenient: bool
    ) -> None:
        """Record ``rule`` acting at ``path``; raise if it rejects in strict mode.

        For the sub-feature checks (:mod:`translator.compat.subfeatures`).
        """
        if rule.treatment is _REJECTED:
            if not lenient:
                raise _rejection(self.backend, rule, field, path, value, self._unknown_rule)
            report.actions.append(Action(path, field, rule.treatment, rule.reason, True))
        else:
            report.actions.append(Action(path, field, rule.treatment, rule.reason))

    def sub_rule(self, field: str, value: Any) -> Rule | None:
        """The rule acting on sub-feature ``field`` with ``value``, or None to keep it.

        For the sub-feature checks (:mod:`translator.compat.subfeatures`).
        """
        rules = self._sub_rules.get(field)
        if rules is None:
            return None
        rule = _first(rules, value)
        if rule is None or rule.treatment is _SUPPORTED:
            return None
        return rule

    def _apply_roles(self, request: ChatRequest, report: Report, lenient: bool) -> set[int]:
        """Apply the role rows; the indices of the messages dropped."""
        messages = request.messages
        dropped: set[int] = set()
        for i, message in enumerate(messages):
            row = self._role_rules.get(type(message))
            if row is None:
                continue
            role, rule, rules = row
            if rule is None:
                rule = _acting(rules, role)
            if rule is not None:
                self.act(rule, rule.field, f"messages[{i}]", role, report, lenient)
                if rule.treatment is not _EMULATED:
                    dropped.add(i)
        if dropped:
            request.messages = [m for i, m in enumerate(messages) if i not in dropped]
        return dropped

    def _apply_parts(self, parts: list[Any], i: int, report: Report, lenient: bool) -> None:
        dropped: list[int] = []
        for j, part in enumerate(parts):
            row = self._part_rules.get(type(part))
            rule = None
            if row is not None:
                tag, rule, rules = row
                if rule is None:
                    rule = _acting(rules, tag)
            if rule is not None:
                self.act(rule, rule.field, f"messages[{i}].content[{j}]", tag, report, lenient)
                if rule.treatment is not _EMULATED:
                    dropped.append(j)
            elif self._detail_rules and type(part) is ImagePart:
                detail = part.image_url.detail
                if detail is UNSET:
                    continue
                rule = _acting(self._detail_rules, detail)
                if rule is not None:
                    path = f"messages[{i}].content[{j}].image_url.detail"
                    self.act(rule, rule.field, path, detail, report, lenient)
                    part.image_url.detail = UNSET
        for j in reversed(dropped):
            del parts[j]

    def _apply_unknown(
        self, request: ChatRequest, extra: Mapping[str, msgspec.Raw], report: Report, lenient: bool
    ) -> None:
        kept: dict[str, msgspec.Raw] = {}
        for name, raw in extra.items():
            rules = self._extra_rules.get(name)
            if rules is None:
                rule: Rule | None = self._unknown_rule
            else:
                value = msgspec.json.decode(raw) if _conditional(rules) else None
                rule = _first(rules, value)
            if rule is None or rule.treatment is _SUPPORTED:
                kept[name] = raw
                continue
            self.act(rule, name, name, None, report, lenient)
        if len(kept) != len(extra):
            set_unknown_fields(request, kept)


_INFO = logging.INFO
_ROWS = frozenset(SUB_FEATURES)
_LENIENT = Mode.LENIENT
_SUPPORTED = Treatment.SUPPORTED
_REJECTED = Treatment.REJECTED
_EMULATED = Treatment.EMULATED
_NONE: frozenset[int] = frozenset()


def _sent_finder(names: list[str]) -> Callable[[ChatRequest], list[int]]:
    """A function giving the positions in ``names`` of the fields a request sent."""
    assert all(name.isidentifier() for name in names)
    lines = ["def sent(request, UNSET=UNSET):", "    found = []"]
    lines += [
        f"    if request.{name} is not UNSET: found.append({i})" for i, name in enumerate(names)
    ]
    lines.append("    return found")
    namespace: dict[str, Any] = {"UNSET": UNSET}
    # The names are the canonical model's own field names, checked above.
    exec("\n".join(lines), namespace)
    finder: Callable[[ChatRequest], list[int]] = namespace["sent"]
    return finder


def _fixed(rules: _Rules) -> Rule | None:
    """The one rule of a row that holds for any value, or None when values decide."""
    return rules[0] if len(rules) == 1 and rules[0].when is None else None


def _is_active(rules: _Rules) -> bool:
    return any(r.treatment is not Treatment.SUPPORTED for r in rules)


def _conditional(rules: _Rules) -> bool:
    return any(r.when is not None for r in rules)


def _rows(sub_rules: dict[str, _Rules], prefix: str) -> dict[str, _Rules]:
    return {f[len(prefix) :]: r for f, r in sub_rules.items() if f.startswith(prefix)}


def _first(rules: _Rules, value: Any) -> Rule | None:
    for rule in rules:
        if rule.holds(value):
            return rule
    return None


def _acting(rules: _Rules | None, value: Any) -> Rule | None:
    """The rule that acts on ``value`` (anything but supported), or None."""
    if rules is None:
        return None
    rule = _first(rules, value)
    if rule is None or rule.treatment is Treatment.SUPPORTED:
        return None
    return rule


def _rejection(
    backend: str, rule: Rule, field: str, path: str, value: Any, unknown_rule: Rule
) -> UnsupportedFieldError:
    if rule is unknown_rule:
        return UnsupportedFieldError(
            f"Unrecognized request argument supplied: {field}",
            param=path,
            code="unsupported_parameter",
        )
    reason = rule.reason.rstrip(". ")
    head, dot, _ = field.partition(".")
    value_row = bool(dot) and head in VALUE_ROWS and field.count(".") == 1
    if rule.when is not None:
        shown = msgspec.json.encode(value).decode() if _is_scalar(value) else "this value"
        condition = f" {rule.describe_when()} (got {shown})"
    else:
        condition = ""
    return UnsupportedFieldError(
        f"The {backend} backend does not support '{field}'{condition}: {reason}.",
        param=path,
        code="unsupported_value" if rule.when is not None or value_row else "unsupported_parameter",
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
