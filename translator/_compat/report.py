"""What applying a matrix did to one request, for the caller, the logs and the headers."""

from __future__ import annotations

import msgspec

from .rules import Treatment

__all__ = ["Action", "Report"]


class Action(msgspec.Struct, frozen=True):
    """One thing the matrix did: ``path`` is where in the request, ``field`` the row."""

    path: str
    field: str
    treatment: Treatment
    reason: str
    relaxed: bool = False
    """True for a rejected field dropped because the request was applied leniently."""


class Report(msgspec.Struct):
    """What applying a matrix did: the fields dropped (ignored or relaxed) and emulated."""

    backend: str
    actions: list[Action] = msgspec.field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        """Paths dropped before the backend saw them (ignored, or rejected in lenient mode)."""
        return [a.path for a in self.actions if a.treatment is not Treatment.EMULATED]

    @property
    def ignored(self) -> list[str]:
        """Paths dropped because the matrix ignores them."""
        return [a.path for a in self.actions if a.treatment is Treatment.IGNORED]

    @property
    def relaxed(self) -> list[str]:
        """Paths the matrix rejects, dropped instead because the request was lenient."""
        return [a.path for a in self.actions if a.relaxed]

    @property
    def emulated(self) -> list[str]:
        """Fields the translator does for the backend (``stream``, ...)."""
        return [a.field for a in self.actions if a.treatment is Treatment.EMULATED]

    def emulates(self, field: str) -> bool:
        """Whether ``field`` is emulated for this request."""
        return any(a.field == field and a.treatment is Treatment.EMULATED for a in self.actions)

    def emulate(self, field: str, reason: str) -> None:
        """Record that the translator does ``field`` itself, in place of any drop of it."""
        self.actions = [a for a in self.actions if a.field != field]
        self.actions.append(Action(field, field, Treatment.EMULATED, reason))

    def header(self) -> str:
        """The dropped paths as one header value (``x-translator-ignored``), or ``""``."""
        return ", ".join(self.dropped)

    def describe(self) -> str:
        """One line for a log or a terminal: ``n rejected (relaxed), stop ignored``."""
        return ", ".join(
            f"{a.path} {a.treatment}{' (relaxed)' if a.relaxed else ''}" for a in self.actions
        )
