"""A value's check bounded in work, whatever the schema's references make of it.

fastjsonschema writes a function for each subschema a ``$ref`` names, and a
``$ref`` may name its own schema. Under ``anyOf`` (or ``oneOf``) such a
schema checks the rest of a nested value once for each branch, at every
level: with ``{"$defs": {"n": {"anyOf": [A, B]}}}`` where both branches
follow ``#/$defs/n``, an answer nested 20 levels deep is checked about
2**20 times over (seconds, with the event loop stopped). Exponential without
any pattern; so :func:`bound_calls` makes each generated function count its
calls, and raise :class:`TooLong` once a value's check has made more than
:data:`.budget.CALLS`. Between two calls the code runs straight through the schema,
over the value's items at most (time linear in the value, as for a schema
without references), so the count bounds the time (about a tenth of a second at
the limit) and, unlike a clock, judges an answer the same way however busy the
machine is. A real answer makes one call per object the references reach (a
tree of 1,365 pydantic objects: 1,365 calls, 5 ms).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from .budget import left

__all__ = ["TooLong", "bound_calls"]


class TooLong(Exception):
    """A value's check ran past :data:`.budget.CALLS`."""


def bound_calls(validate: types.FunctionType) -> None:
    """Make every function fastjsonschema generated with ``validate`` count against the budget.

    They call each other by their global names; those names are given the
    function that tests first (``validate`` tests when a ``$ref`` names the root).
    """
    generated: dict[str, Any] = validate.__globals__
    for name, value in list(generated.items()):
        if isinstance(value, types.FunctionType) and value.__globals__ is generated:
            generated[name] = _bounded(value)


def _bounded(function: types.FunctionType) -> Callable[..., Any]:
    budget = left

    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget.calls -= 1
        if budget.calls < 0:
            raise TooLong
        return function(*args, **kwargs)

    return bounded
