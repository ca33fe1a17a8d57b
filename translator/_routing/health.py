"""Passive health: a backend that keeps failing is left alone for a while.

Every attempt on a backend ends as a success or as one of the backend's own
failures (:attr:`translator._http.Failure.blames_backend`); a client's error
says nothing of the backend and counts as neither. After ``cooldown_after``
consecutive failures a backend is *cooled down* for ``cooldown_seconds``:
routes skip it while another of their backends is available. Once the time
is up it is *half-open*: the next request may go to it as a probe (one at a
time); the probe's success makes it healthy again, its failure cools it down
for another period.

The state is plain data (:meth:`Health.snapshot`) for ``/ready`` to show,
and each change of a backend's failures or cool-down is told to ``listener``
(metrics); it is kept per process. Requests in flight per backend are counted
here too, for the least-busy strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import msgspec

from .settings import HealthSettings

__all__ = ["BackendState", "Health"]


class BackendState(msgspec.Struct, frozen=True):
    """One backend's health, as ``/ready`` and metrics show it."""

    state: str
    """``healthy``, ``cooled_down``, ``half_open`` (a probe may go) or ``probing``."""
    failures: int
    """Consecutive failed attempts."""
    in_flight: int
    cooldown_remaining: float
    """Seconds until a probe may go; 0 unless cooled down."""


class _Backend:
    __slots__ = ("cooled_until", "failures", "in_flight", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.cooled_until: float | None = None
        self.probing = False
        self.in_flight = 0


class Health:
    """Health and load of every backend, by name."""

    __slots__ = ("_backends", "_clock", "after", "listener", "seconds")

    def __init__(
        self,
        backends: Iterable[str],
        settings: HealthSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings or HealthSettings()
        self.after = settings.cooldown_after
        self.seconds = settings.cooldown_seconds
        self._clock = clock
        self._backends = {name: _Backend() for name in backends}
        self.listener: Callable[[str, int, bool], None] | None = None
        """Called with ``(backend, consecutive failures, cooled down)`` when either changes."""

    def available(self, backend: str) -> bool:
        """Whether a request may go to ``backend`` now (healthy, or due a probe)."""
        state = self._backends[backend]
        until = state.cooled_until
        if until is None:
            return True
        return not state.probing and self._clock() >= until

    def in_flight(self, backend: str) -> int:
        return self._backends[backend].in_flight

    def start(self, backend: str) -> None:
        """An attempt on ``backend`` starts (a probe, when it is cooled down)."""
        state = self._backends[backend]
        state.in_flight += 1
        if state.cooled_until is not None:
            state.probing = True

    def record(self, backend: str, *, ok: bool | None) -> None:
        """How an attempt went: True a success, False the backend's failure, None
        neither (the client's error, or the request given up)."""
        state = self._backends[backend]
        if ok:
            if state.failures == 0 and state.cooled_until is None:
                return  # the usual case: nothing changes
            state.failures = 0
            state.cooled_until = None
            state.probing = False
        elif ok is False:
            state.failures += 1
            if state.probing or state.failures >= self.after:
                state.cooled_until = self._clock() + self.seconds
            state.probing = False
        else:
            state.probing = False  # a probe that told nothing: the next request probes
            return
        if self.listener is not None:
            self.listener(backend, state.failures, state.cooled_until is not None)

    def finish(self, backend: str) -> None:
        """An attempt on ``backend`` is over (a stream: closed)."""
        self._backends[backend].in_flight -= 1

    def snapshot(self) -> dict[str, BackendState]:
        """Every backend's state, by name."""
        now = self._clock()
        shown: dict[str, BackendState] = {}
        for name, state in self._backends.items():
            until = state.cooled_until
            if until is None:
                kind, left = "healthy", 0.0
            elif state.probing:
                kind, left = "probing", 0.0
            elif now < until:
                kind, left = "cooled_down", round(until - now, 3)
            else:
                kind, left = "half_open", 0.0
            shown[name] = BackendState(kind, state.failures, state.in_flight, left)
        return shown
