"""Treatments and rules: how a backend treats one request field, as data."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "Above",
    "Equals",
    "Mode",
    "OneOf",
    "Rule",
    "Treatment",
    "When",
    "emulated",
    "ignored",
    "rejected",
    "supported",
]


class Mode(enum.StrEnum):
    """Strict mode refuses rejected fields; lenient mode drops and reports them."""

    STRICT = "strict"
    LENIENT = "lenient"


class Treatment(enum.StrEnum):
    """What the translator does with a field a client sent."""

    SUPPORTED = "supported"
    """Passed to the backend, which honours it."""
    IGNORED = "ignored"
    """Accepted, dropped before the backend sees it, and reported."""
    REJECTED = "rejected"
    """Refused with a 400 (dropped and reported instead in lenient mode)."""
    EMULATED = "emulated"
    """Done by the translator for a backend that cannot."""


class When(msgspec.Struct, frozen=True):
    """A condition on a field's value; a rule with one holds only when it matches."""

    def matches(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class Above(When, frozen=True):
    """The value is a number greater than ``limit``."""

    limit: float

    def matches(self, value: Any) -> bool:
        return isinstance(value, _NUMBERS) and not isinstance(value, bool) and value > self.limit

    def describe(self) -> str:
        limit = int(self.limit) if self.limit == int(self.limit) else self.limit
        return f"> {limit}"


class Equals(When, frozen=True):
    """The value equals ``value``."""

    value: str | int | float | bool | None

    def matches(self, value: Any) -> bool:
        return _same(value, self.value)

    def describe(self) -> str:
        return f"= {msgspec.json.encode(self.value).decode()}"


class OneOf(When, frozen=True):
    """The value is one of ``values``."""

    values: tuple[str | int | float | bool | None, ...]

    def matches(self, value: Any) -> bool:
        return any(_same(value, v) for v in self.values)

    def describe(self) -> str:
        return "in " + ", ".join(msgspec.json.encode(v).decode() for v in self.values)


_NUMBERS = (int, float)


def _same(value: Any, expected: Any) -> bool:
    """Equal, with ``true``/``false`` never equal to ``1``/``0``."""
    return isinstance(value, bool) is isinstance(expected, bool) and bool(value == expected)


class Rule(msgspec.Struct, frozen=True):
    """One row of a matrix: ``field`` is treated as ``treatment`` (``when`` it matches)."""

    field: str
    treatment: Treatment
    reason: str
    when: When | None = None

    def holds(self, value: Any) -> bool:
        """Whether this rule applies to ``value``."""
        return self.when is None or self.when.matches(value)

    def describe_when(self) -> str | None:
        """The condition as text (``"> 1"``), or None for any value."""
        return None if self.when is None else self.when.describe()


def supported(field: str, reason: str, *, when: When | None = None) -> Rule:
    """A rule: the backend honours ``field``."""
    return Rule(field, Treatment.SUPPORTED, reason, when)


def ignored(field: str, reason: str, *, when: When | None = None) -> Rule:
    """A rule: ``field`` is accepted, dropped and reported."""
    return Rule(field, Treatment.IGNORED, reason, when)


def rejected(field: str, reason: str, *, when: When | None = None) -> Rule:
    """A rule: ``field`` is refused with a 400."""
    return Rule(field, Treatment.REJECTED, reason, when)


def emulated(field: str, reason: str, *, when: When | None = None) -> Rule:
    """A rule: the translator does ``field`` for the backend."""
    return Rule(field, Treatment.EMULATED, reason, when)
