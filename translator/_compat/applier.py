"""The compiled side of a matrix: applying it to one request.

:class:`Applier` walks a request with the tables a
:class:`~translator._compat.matrix.Matrix` compiles from its rules: the
generated dispatcher of top-level fields (:mod:`translator._compat.checks`),
then roles and content parts, then the fields the canonical model does not
know. The checks call back into it through :meth:`Applier.act` and
:meth:`Applier.sub_rule`: they depend on the applier, never on the declarative
matrix, which builds on both. The policy it applies is told in
:mod:`translator._compat.matrix`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from msgspec import UNSET

from .._model import (
    AssistantMessage,
    ChatRequest,
    ImagePart,
    set_unknown_fields,
    unknown_fields,
)
from .._model.replayed import REPLAYED_REASON
from .._model.request import replayed_fields
from ..errors import UnsupportedFieldError
from .fields import VALUE_ROWS
from .report import Action, Report
from .rules import Mode, Rule, Treatment

__all__ = ["Applier", "TopCheck", "acting", "first", "rejection"]

log = logging.getLogger("translator.compat")

TopCheck = Callable[[ChatRequest, list[Action], bool], None]
"""Runs the check of every field a request sent, in field order."""

_Rules = tuple[Rule, ...]
_Row = tuple[str, Rule | None, _Rules]
"""A role or part row: its name, the rule for any value (or None), every rule."""


class Applier:
    """A matrix's compiled tables, and the one pass that applies them to a request."""

    backend: str
    unknown_rule: Rule
    """The rule for a field no rule names: the matrix's unknown policy."""
    _lenient: bool
    _check_top: TopCheck | None
    _check_messages: bool
    _check_unknown: bool
    _sub_rules: dict[str, _Rules]
    _role_rules: dict[type, _Row]
    _role_types: frozenset[type]
    _part_rules: dict[type, _Row]
    _part_types: frozenset[type]
    _detail_rules: _Rules | None
    _detail_rule: Rule | None
    _extra_rules: dict[str, _Rules]

    def apply(self, request: ChatRequest, *, mode: Mode | None = None) -> Report:
        """Check what ``request`` sent against the matrix, dropping what it does not keep.

        Raises :class:`UnsupportedFieldError` for a rejected field in strict mode,
        and in any mode when no message is left to send.
        The request is changed in place; the report says how.
        """
        actions: list[Action] = []
        lenient = self._lenient if mode is None else mode is _LENIENT or mode == "lenient"
        if self._check_top is not None:
            self._check_top(request, actions, lenient)
        if self._check_messages:
            self._apply_messages(request, actions, lenient)
        # Unknown fields and replayed ones live in the request's __dict__
        # (see model.unknown_fields and model.replayed).
        if request.__dict__:
            if self._check_unknown:
                extra = unknown_fields(request)
                if extra:
                    self._apply_unknown(request, extra, actions, lenient)
            for path in replayed_fields(request):
                field = "messages." + path.rpartition(".")[2]
                actions.append(Action(path, field, _IGNORED, REPLAYED_REASON))
        report = Report(self.backend, actions)
        if actions and log.isEnabledFor(_INFO):
            log.info("compat %s: %s", self.backend, report.describe())
        return report

    def act(
        self, rule: Rule, field: str, path: str, value: Any, actions: list[Action], lenient: bool
    ) -> None:
        """Record ``rule`` acting at ``path``; raise if it rejects in strict mode.

        For the sub-feature checks (:mod:`translator._compat.subfeatures`).
        """
        rejects = rule.treatment is _REJECTED
        if rejects and not lenient:
            raise rejection(self, rule, field, path, value)
        actions.append(Action(path, field, rule.treatment, rule.reason, rejects))

    def sub_rule(self, field: str, value: Any) -> Rule | None:
        """The rule acting on sub-feature ``field`` with ``value``, or None to keep it.

        For the sub-feature checks (:mod:`translator._compat.subfeatures`).
        """
        return acting(self._sub_rules.get(field), value)

    def _apply_messages(self, request: ChatRequest, actions: list[Action], lenient: bool) -> None:
        """Apply the role and content part rows; drop the messages they empty.

        One pass that allocates nothing for a message no row acts on.
        """
        messages = request.messages
        role_types = self._role_types
        part_types = self._part_types
        # Whether any role row can act at all, asked once for every message.
        roles = not role_types.isdisjoint(map(type, messages)) if role_types else False
        gone: list[int] | None = None
        i = -1
        for message in messages:
            i += 1
            if (
                roles
                and type(message) in role_types
                and self._apply_role(message, i, actions, lenient)
            ):
                gone = [*gone, i] if gone else [i]
                continue
            if not part_types:
                continue
            content = message.content
            if type(content) is not list or part_types.isdisjoint(map(type, content)):
                continue
            # Parts are reported under their message's index as sent.
            done = len(actions)
            self._apply_parts(content, i, actions, lenient)
            if not content and self._empty(message, i, actions, done):
                gone = [*gone, i] if gone else [i]
        if gone:
            request.messages = [m for i, m in enumerate(messages) if i not in gone]
            if not request.messages:
                described = Report(self.backend, actions).describe()
                raise UnsupportedFieldError(
                    f"The {self.backend} backend has no message left to answer: "
                    f"every message was dropped ({described}).",
                    param="messages",
                    code="unsupported_value",
                    field="messages",
                    backend=self.backend,
                )

    def _apply_role(self, message: Any, i: int, actions: list[Action], lenient: bool) -> bool:
        """Apply its role's row to message ``i``; whether the message is dropped."""
        role, rule, rules = self._role_rules[type(message)]
        if rule is None:
            rule = acting(rules, role)
        if rule is None:
            return False
        self.act(rule, rule.field, f"messages[{i}]", role, actions, lenient)
        return rule.treatment is not _EMULATED

    def _apply_parts(self, parts: list[Any], i: int, actions: list[Action], lenient: bool) -> None:
        part_rules = self._part_rules
        dropped: list[int] | None = None
        j = -1
        for part in parts:
            j += 1
            row = part_rules.get(type(part))
            if row is not None:
                tag, rule, rules = row
                if rule is None:
                    rule = acting(rules, tag)
                if rule is not None:
                    path = f"messages[{i}].content[{j}]"
                    self.act(rule, rule.field, path, tag, actions, lenient)
                    if rule.treatment is not _EMULATED:
                        dropped = [*dropped, j] if dropped else [j]
                    continue
            if type(part) is ImagePart and self._detail_rules is not None:
                detail = part.image_url.detail
                if detail is UNSET:
                    continue
                rule = self._detail_rule or acting(self._detail_rules, detail)
                if rule is not None:
                    path = f"messages[{i}].content[{j}].image_url.detail"
                    self.act(rule, rule.field, path, detail, actions, lenient)
                    part.image_url.detail = UNSET
        if dropped:
            for j in reversed(dropped):
                del parts[j]

    def _empty(self, message: Any, i: int, actions: list[Action], done: int) -> bool:
        """Whether message ``i``, every part of its content dropped, goes too.

        An assistant message that also calls tools (or a function, or names its
        audio) stays, with null content; any other message would say nothing, so
        it is dropped and reported at ``messages[i]``, as relaxed when one of its
        parts was.
        """
        if type(message) is AssistantMessage and (
            message.tool_calls or message.function_call or message.audio
        ):
            message.content = None
            return False
        parts = actions[done:]
        relaxed = any(a.relaxed for a in parts)
        treatment = _REJECTED if relaxed else Treatment.IGNORED
        actions.append(Action(f"messages[{i}]", parts[0].field, treatment, _EMPTIED, relaxed))
        return True

    def _apply_unknown(
        self,
        request: ChatRequest,
        extra: Mapping[str, msgspec.Raw],
        actions: list[Action],
        lenient: bool,
    ) -> None:
        kept: dict[str, msgspec.Raw] = {}
        for name, raw in extra.items():
            rules = self._extra_rules.get(name)
            if rules is None:
                rule: Rule | None = self.unknown_rule
            else:
                value = msgspec.json.decode(raw) if _conditional(rules) else None
                rule = first(rules, value)
            if rule is None or rule.treatment is _SUPPORTED:
                kept[name] = raw
                continue
            self.act(rule, name, name, None, actions, lenient)
        if len(kept) != len(extra):
            set_unknown_fields(request, kept)


def first(rules: Sequence[Rule], value: Any) -> Rule | None:
    """The first of ``rules`` that holds for ``value``."""
    for rule in rules:
        if rule.holds(value):
            return rule
    return None


def acting(rules: Sequence[Rule] | None, value: Any) -> Rule | None:
    """The rule that acts on ``value`` (anything but supported), or None."""
    if rules is None:
        return None
    rule = first(rules, value)
    if rule is None or rule.treatment is _SUPPORTED:
        return None
    return rule


def rejection(
    applier: Applier, rule: Rule, field: str, path: str, value: Any
) -> UnsupportedFieldError:
    """The 400 for ``rule`` rejecting ``field`` (at ``path``, with ``value``)."""
    if rule is applier.unknown_rule:
        return UnsupportedFieldError(
            f"Unrecognized request argument supplied: {field}",
            param=path,
            code="unsupported_parameter",
            backend=applier.backend,
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
        f"The {applier.backend} backend does not support '{field}'{condition}: {reason}.",
        param=path,
        code="unsupported_value" if rule.when is not None or value_row else "unsupported_parameter",
        field=field,
        backend=applier.backend,
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _conditional(rules: _Rules) -> bool:
    return any(r.when is not None for r in rules)


_INFO = logging.INFO
_LENIENT = Mode.LENIENT
_SUPPORTED = Treatment.SUPPORTED
_REJECTED = Treatment.REJECTED
_IGNORED = Treatment.IGNORED
_EMULATED = Treatment.EMULATED
_EMPTIED = "every part of its content was dropped, so it would say nothing"
