"""The hot path of a matrix, built once when it is compiled.

Each top-level field a matrix acts on gets a :data:`Check`, a closure that does
only what that field's rules need; a generated :data:`TopCheck` tests which of
those fields the request sent (one attribute test each, no loop, no copies) and
calls their checks. A field dropped for any value has its report entries built
in advance, so the common case (``max_tokens`` ignored) costs one append and
one attribute store. A field ignored for any value and sent as null is dropped
without a report: null asks for nothing (see :mod:`translator._model.replayed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import UNSET

from .._model import ChatRequest
from ..errors import UnsupportedFieldError
from .applier import Applier, TopCheck, rejection
from .report import Action
from .rules import Rule, Treatment

__all__ = [
    "Check",
    "Drop",
    "SubCheck",
    "top_check",
    "top_dispatcher",
]

Check = Callable[[ChatRequest, list[Action], bool], None]
"""Checks one sent field: ``(request, actions, lenient)``; raises to reject it."""

SubCheck = Callable[[Applier, ChatRequest, list[Action], bool], None]
"""Checks the sub-feature rows of one sent field: ``(applier, request, actions, lenient)``."""

_SUPPORTED = Treatment.SUPPORTED
_REJECTED = Treatment.REJECTED
_IGNORED = Treatment.IGNORED


class Drop:
    """A top-level field dropped whatever its value: reported as ``action``.

    ``refuse`` is set for a rejected field: it gives the error for the value
    sent, raised instead in strict mode (``action`` is then the relaxed drop).
    """

    __slots__ = ("action", "refuse")

    def __init__(
        self, action: Action, refuse: Callable[[Any], UnsupportedFieldError] | None = None
    ) -> None:
        self.action = action
        self.refuse = refuse


def top_check(
    matrix: Applier, name: str, rules: tuple[Rule, ...], sub: SubCheck | None
) -> Check | Drop:
    """How top-level field ``name`` is checked: its acting ``rules``, then its sub-feature rows."""
    if len(rules) == 1 and rules[0].when is None:
        # One rule for any value: the dispatcher drops the field without a call.
        return _fixed_drop(matrix, name, rules[0])
    tests = tuple(
        (rule.when, None if rule.treatment is _SUPPORTED else _drop(matrix, name, rule))
        for rule in rules
    )

    def check(request: ChatRequest, actions: list[Action], lenient: bool) -> None:
        value = getattr(request, name)
        for when, drop in tests:
            if when is None or when.matches(value):
                if drop is not None:
                    drop(request, actions, lenient)
                    return
                break
        if sub is not None:
            sub(matrix, request, actions, lenient)

    return check


def _fixed_drop(matrix: Applier, name: str, rule: Rule) -> Drop:
    if rule.treatment is not _REJECTED:
        return Drop(Action(name, name, rule.treatment, rule.reason))

    def refuse(value: Any) -> UnsupportedFieldError:
        return rejection(matrix, rule, name, name, value)

    return Drop(Action(name, name, rule.treatment, rule.reason, True), refuse)


def _drop(matrix: Applier, name: str, rule: Rule) -> Check:
    """Act on field ``name`` by ``rule``: take it off the request and report it, or reject it."""
    fixed = _fixed_drop(matrix, name, rule)
    action, refuse = fixed.action, fixed.refuse

    def drop(request: ChatRequest, actions: list[Action], lenient: bool) -> None:
        if refuse is not None and not lenient:
            raise refuse(getattr(request, name))
        actions.append(action)
        setattr(request, name, UNSET)

    return drop


def top_dispatcher(checks: dict[str, Check | Drop]) -> TopCheck:
    """A function checking each field of ``checks`` the request sent, in order.

    It tests each field with one attribute load; a :class:`Drop` is inlined
    (an append and an attribute store), any other check is called.
    """
    assert all(name.isidentifier() for name in checks)
    lines = ["def check_top(request, actions, lenient, UNSET=UNSET):"]
    namespace: dict[str, Any] = {"UNSET": UNSET}
    for i, (name, check) in enumerate(checks.items()):
        lines.append(f"    if request.{name} is not UNSET:")
        if isinstance(check, Drop):
            if check.refuse is not None:
                namespace[f"refuse_{i}"] = check.refuse
                lines.append(f"        if not lenient: raise refuse_{i}(request.{name})")
            namespace[f"action_{i}"] = check.action
            if check.action.treatment is _IGNORED:
                # Null asks for nothing: forgotten, not reported (model.replayed).
                lines.append(f"        if request.{name} is not None: actions.append(action_{i})")
            else:
                lines.append(f"        actions.append(action_{i})")
            lines.append(f"        request.{name} = UNSET")
        else:
            namespace[f"check_{i}"] = check
            lines.append(f"        check_{i}(request, actions, lenient)")
    # The names are the canonical model's own field names, checked above.
    exec("\n".join(lines), namespace)
    dispatcher: TopCheck = namespace["check_top"]
    return dispatcher
