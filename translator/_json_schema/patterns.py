"""A schema's regular expressions, matched in time linear in the text, within a budget.

fastjsonschema compiles the patterns of a schema (``pattern``,
``patternProperties``, and ``pattern`` inside ``propertyNames``) with
Python's ``re``, which backtracks: on a string made for it, ``^(a+)+$`` takes
time exponential in the string's length, and ``^.*a.*a.*a.*b$`` (no nested
quantifier) a high power of it, all the while holding the GIL, so the whole
server stops. The client sends the pattern and can coax the model into the
string. :func:`match_in_linear_time` therefore gives a compiled check RE2
(``google-re2``) in place of ``re`` for each of its patterns:

- RE2 matches in time linear in the text (times the pattern's program size),
  whatever the pattern. It reads the pattern as JSON Schema means it
  (ECMA-262) where Python's ``re`` differs: ``$`` ends the text, ``\\d``,
  ``\\w`` and ``\\b`` are ASCII, ``\\uXXXX`` is a code point;
- what RE2 cannot match in linear time (lookaround, backreferences) is
  refused, as is a pattern whose program does not fit in
  :data:`PATTERN_MEMORY`, and a schema of more than :data:`PATTERNS` distinct
  patterns (each pattern may use that much memory, for as long as its schema
  is kept);
- text times program size, over all the strings one value has matched against
  patterns, is held under :data:`.budget.WORK` (about 0.1 s at RE2's slowest,
  far beyond any real answer): past it, :class:`TooMuchText` is raised.
"""

from __future__ import annotations

import re
import types
from typing import Any, Final

import re2

from .budget import left

__all__ = [
    "PATTERNS",
    "PATTERN_MEMORY",
    "PatternError",
    "TooMuchText",
    "match_in_linear_time",
]

PATTERN_MEMORY: Final = 1 << 18
"""RE2's memory for one pattern (program and cache), in bytes: programs of up to
about 20,000 steps (``^.{0,1000}$``, the longest repetition RE2 takes, is 9,000)."""
PATTERNS: Final = 64
"""The most distinct patterns one schema may have."""

_OPTIONS: Final = re2.Options()
_OPTIONS.max_mem = PATTERN_MEMORY
_OPTIONS.log_errors = False  # a refused pattern is a message to the client, not a log line
_OPTIONS.never_capture = True  # only whether it matches counts
_PYTHON_ESCAPE: Final = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)


class PatternError(ValueError):
    """A schema whose patterns cannot be matched in linear time; the message says why."""


class TooMuchText(Exception):
    """More text than :data:`.budget.WORK` allows was matched against patterns for one value."""


class _Linear:
    """One pattern, compiled by RE2, with the ``search`` fastjsonschema's code calls."""

    __slots__ = ("_regex", "_steps")

    def __init__(self, regex: Any) -> None:
        self._regex = regex
        self._steps: int = regex.programsize

    def search(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        work = left.work - len(data) * self._steps
        if work < 0:
            raise TooMuchText
        left.work = work
        return self._regex.search(data) is not None


def match_in_linear_time(validate: Any) -> int:
    """Give ``validate`` (what ``fastjsonschema.compile`` returned) RE2 for every pattern;
    how many there are (each may hold :data:`PATTERN_MEMORY`).

    Raises :class:`PatternError` for patterns RE2 cannot take.
    """
    if not isinstance(validate, types.FunctionType):
        raise TypeError(f"a generated function was expected, not {type(validate).__name__}")
    compiled: dict[str, Any] = validate.__globals__["REGEX_PATTERNS"]
    if len(compiled) > PATTERNS:
        raise PatternError(f"it has {len(compiled)} distinct patterns, more than {PATTERNS}")
    for pattern in compiled:  # keyed by the pattern as the schema gives it
        compiled[pattern] = _Linear(_compile(pattern))
    return len(compiled)


def _compile(pattern: str) -> Any:
    try:
        return re2.compile(_as_re2(pattern), _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"pattern {pattern!r} is not one RE2 matches in linear time ({reason})"
        ) from None


def _as_re2(pattern: str) -> str:
    """``pattern`` with Python's and ECMA-262's ``\\uXXXX`` (and ``\\UXXXXXXXX``)
    written as RE2 writes them, ``\\x{XXXX}``."""
    if "\\u" not in pattern and "\\U" not in pattern:
        return pattern
    return _PYTHON_ESCAPE.sub(_code_point, pattern)


def _code_point(escape: re.Match[str]) -> str:
    body = escape[1]
    return f"\\x{{{body[1:]}}}" if len(body) > 1 else escape[0]
