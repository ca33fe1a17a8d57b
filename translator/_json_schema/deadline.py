"""A value's check bounded in time, whatever the schema's references make of it.

fastjsonschema writes a function for each subschema a ``$ref`` names, and a
``$ref`` may name its own schema. Under ``anyOf`` (or ``oneOf``) such a
schema checks the rest of a nested value once for each branch, at every
level: with ``{"$defs": {"n": {"anyOf": [A, B]}}}`` where both branches
follow ``#/$defs/n``, an answer nested 20 levels deep is checked about
2**20 times over (seconds, with the event loop stopped). Exponential without
any pattern; so :func:`bound_calls` makes each generated function, when
called, first see that the value's check has run for less than :data:`LIMIT`
seconds, and raise :class:`TooLong` past it. Between two calls the code runs
straight through the schema, over the value's items at most (time linear in
the value, as for a schema without references), so a check ends soon after
:data:`LIMIT`. A real answer is checked in microseconds to milliseconds.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from typing import Any, Final

__all__ = ["LIMIT", "TooLong", "bound_calls", "start"]

LIMIT: Final = 0.1
"""Seconds one value's check may run, tested at each call between the schema's parts."""

_clock: Final = time.perf_counter


class TooLong(Exception):
    """A value's check ran past :data:`LIMIT`."""


class _Deadline(threading.local):
    """When the check of the value being checked in this thread must end."""

    at: float = 0.0


_deadline: Final = _Deadline()


def start() -> None:
    """Start a value's clock: call before each check."""
    _deadline.at = _clock() + LIMIT


def bound_calls(validate: types.FunctionType) -> None:
    """Make every function fastjsonschema generated with ``validate`` test the deadline.

    They call each other by their global names; those names are given the
    function that tests first (``validate`` tests when a ``$ref`` names the root).
    """
    generated: dict[str, Any] = validate.__globals__
    for name, value in list(generated.items()):
        if isinstance(value, types.FunctionType) and value.__globals__ is generated:
            generated[name] = _bounded(value)


def _bounded(function: types.FunctionType) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if _clock() > _deadline.at:
            raise TooLong
        return function(*args, **kwargs)

    return bounded
