"""How big a schema sent by a client may be: compiling it holds the event loop.

fastjsonschema writes Python code for a schema, and Python compiles it, in
time (and, while it does, memory) that grows with the schema's parts: about
35 to 130 µs for each JSON value in it, the most for deeply nested ones; a
1.6 MB schema of 20,000 properties took 3.6 s and 900 MB at its peak. A
schema of more than :data:`VALUES` JSON values (objects, arrays and the values
in them: strings, numbers, booleans, nulls; a long description is one) is
therefore refused before it is compiled, by :func:`check_size`.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["VALUES", "SchemaTooLarge", "check_size"]

VALUES: Final = 2_000
"""The most JSON values a schema may hold: compiled in a tenth of a second, a quarter
at most when deeply nested (a pydantic model of 300 fields holds about 1,200)."""


class SchemaTooLarge(ValueError):
    """A schema of more than :data:`VALUES` JSON values."""


def check_size(definition: Any) -> None:
    """Raise :class:`SchemaTooLarge` if the decoded schema ``definition`` holds more than
    :data:`VALUES` JSON values; counting stops there."""
    left = VALUES - 1
    pending: list[Any] = [definition]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            inner: Any = value.values()
        elif isinstance(value, list):
            inner = value
        else:
            continue
        left -= len(inner)
        if left < 0:
            raise SchemaTooLarge(f"it holds more than {VALUES:,} JSON values")
        pending.extend(inner)
