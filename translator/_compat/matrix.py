"""A backend's compatibility matrix, compiled once and applied to each request.

Rows are field paths (see :mod:`translator._compat.fields`): top-level names
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

A message whose content parts are all dropped would say nothing (and most
backends refuse an empty content), so it is dropped too, reported at
``messages[i]``; an assistant message that also calls tools keeps its calls,
with null content. A request left with no message at all is refused with a
400 on ``messages``, in lenient mode too: there would be nothing to answer.

What clients replay from an earlier answer (an assistant's ``annotations`` or
``reasoning_content``, a tool message's ``name``) was taken off the request
when it was decoded; every matrix reports it as ignored, at its path (see
:mod:`translator._model.replayed`).

Emulated rows are reported too. An emulated parameter (a top-level field,
``stream_options.<option>``, ``vlmrun.<field>``, ``content.image_url.detail``)
is removed: the translator, which read it before the matrix was applied, does
the work. An emulated value (a role, a part type, a response format, a tool
choice form, a tool type) stays in place for the backend's own translation to
emulate (``role.developer`` sent as a system message, say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._model import ImagePart
from .applier import Applier, first
from .checks import Check, Drop, top_check, top_dispatcher
from .fields import (
    PART_CLASSES,
    REQUEST_FIELDS,
    REQUIRED_FIELDS,
    ROLE_TYPES,
    SUB_FEATURES,
    parent_of,
)
from .report import Action, Report
from .rules import Mode, Rule, Treatment
from .subfeatures import SUB_CHECKS

__all__ = ["REQUEST_FIELDS", "Action", "Matrix", "Mode", "Report"]


_Rules = tuple[Rule, ...]


class Matrix(Applier):
    """How one backend treats every request field, as rules; compiled, at
    construction, into the tables its :class:`Applier` base applies."""

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
        # The rule for a field no rule names: the matrix's unknown policy.
        self.unknown_rule = Rule("*", self.unknown, "not a field this backend knows")
        # Active sub-feature rows, looked up by path while applying.
        self._sub_rules = {f: r for f, r in active.items() if parent_of(f) is not None}
        checks: dict[str, Check | Drop] = {}
        for name in REQUEST_FIELDS:
            if name in REQUIRED_FIELDS:
                continue
            rules = active.get(name)
            if name not in self._by_field and self.unknown is not Treatment.SUPPORTED:
                rules = (self.unknown_rule,)
            prefix = name + "."
            sub = SUB_CHECKS[name] if any(f.startswith(prefix) for f in self._sub_rules) else None
            if rules is not None or sub is not None:
                checks[name] = top_check(self, name, rules or (), sub)
        self._lenient = self.mode is Mode.LENIENT
        self._check_top = top_dispatcher(checks) if checks else None
        self._role_rules = {
            ROLE_TYPES[r]: (r, _fixed(v), v) for r, v in _rows(self._sub_rules, "role.").items()
        }
        parts = _rows(self._sub_rules, "content.")
        self._detail_rules = parts.pop("image_url.detail", None)
        self._detail_rule = _fixed(self._detail_rules) if self._detail_rules else None
        self._part_rules = {PART_CLASSES[t]: (t, _fixed(v), v) for t, v in parts.items()}
        self._role_types = frozenset(self._role_rules)
        self._part_types = frozenset(self._part_rules) | (
            {ImagePart} if self._detail_rules else set()
        )
        self._check_messages = bool(self._role_types or self._part_types)
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

    def with_treatments(
        self, treatments: Mapping[str, Treatment], *, source: str = "the configuration"
    ) -> Matrix:
        """A copy in which each field of ``treatments`` takes its treatment, conditions kept.

        A field with rules that are not ``supported`` keeps those rules, with
        their conditions, under the new treatment (``n`` rejected above 1 and
        set to ignored is ignored above 1 and still supported at 1); a field
        with only supported rules, or none, gets one rule for any value. The
        reasons say the change was set in ``source``.
        """
        if not treatments:
            return self
        note = f"set in {source}"
        acting = {r.field for r in self.rules if r.treatment is not Treatment.SUPPORTED}
        rules: list[Rule] = []
        for rule in self.rules:
            treatment = treatments.get(rule.field)
            if treatment is None:
                rules.append(rule)
            elif rule.field in acting and rule.treatment is not Treatment.SUPPORTED:
                if Treatment(treatment) is Treatment.SUPPORTED:
                    # The default rule's reason says why not; it no longer holds.
                    reason = f"{note} (by default {rule.treatment}: {rule.reason})"
                else:
                    reason = f"{rule.reason} ({note})"
                rules.append(Rule(rule.field, Treatment(treatment), reason, rule.when))
            elif rule.field in acting:
                rules.append(rule)
        rules += [
            Rule(field, Treatment(treatment), note)
            for field, treatment in treatments.items()
            if field not in acting
        ]
        return Matrix(self.backend, rules, unknown=self.unknown, mode=self.mode)

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
        return first(self._by_field.get(field, ()), value)

    def treatment(self, field: str, value: Any = None) -> Treatment:
        """How ``field`` with ``value`` is treated, fallbacks and the unknown policy included."""
        rules = self._by_field.get(field)
        if rules is not None:
            rule = first(rules, value)
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


_ROWS = frozenset(SUB_FEATURES)


def _fixed(rules: _Rules) -> Rule | None:
    """The one rule of a row that holds for any value, or None when values decide."""
    return rules[0] if len(rules) == 1 and rules[0].when is None else None


def _is_active(rules: _Rules) -> bool:
    return any(r.treatment is not Treatment.SUPPORTED for r in rules)


def _rows(sub_rules: dict[str, _Rules], prefix: str) -> dict[str, _Rules]:
    return {f[len(prefix) :]: r for f, r in sub_rules.items() if f.startswith(prefix)}
