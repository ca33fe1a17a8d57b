"""Where the library reports what it did, for whoever watches a request.

The library imports neither Prometheus nor OpenTelemetry. At a few named
points (the matrix applied, each upstream attempt and retry, each store
operation, each media fetch) it asks :data:`WATCH` for the :class:`Watcher`
of the request being served. Outside a watched request there is none, and
each point costs one context-variable read. The server sets one per request
(:mod:`translator.server._observe`); an embedder may set its own.

What a watcher is given is never message content: names from configuration
(backends, stores), statuses, sizes, durations, and URLs stripped of
credentials.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["WATCH", "Attempt", "Watcher", "store_call"]


class Attempt(Protocol):
    """One upstream HTTP attempt as it is watched."""

    headers: Mapping[str, str] | None
    """Headers to send with the attempt (trace context), or None."""

    def finished(self, status: int) -> None:
        """The upstream answered ``status`` (the body may still be streaming)."""

    def failed(self, error: BaseException) -> None:
        """The attempt failed before a status came back."""


class Watcher(Protocol):
    """What the library reports about one request."""

    def matrix_applied(self, backend: str, started_ns: int, report: object) -> None:
        """A backend's matrix was applied; ``started_ns`` is ``time.time_ns()`` before it."""

    def upstream_attempt(self, backend: str, method: str, url: str, number: int) -> Attempt:
        """Attempt ``number`` (0 first) of a call to ``url`` (credentials already removed)."""
        ...

    def backend_failed(self, backend: str, error: BaseException) -> None:
        """A call to ``backend`` failed with ``error`` (the route may try its next backend)."""

    def upstream_retry(self, backend: str, reason: str) -> None:
        """An attempt failed with ``reason`` (a status or an error kind) and is tried again."""

    def store_operation(
        self, store: str, operation: str, started_ns: int, error: BaseException | None
    ) -> None:
        """One store call ended (``error`` None when it succeeded)."""

    def media_fetched(self, nbytes: int) -> None:
        """The media fetcher read ``nbytes`` bytes of a remote URL."""

    def media_refused(self, reason: str) -> None:
        """The media fetcher refused a URL: ``refused`` (policy) or ``failed`` (unreachable)."""


WATCH: ContextVar[Watcher | None] = ContextVar("translator.watch", default=None)
"""The watcher of the request being served, if any."""


@contextmanager
def store_call(store: str, operation: str) -> Iterator[None]:
    """Report the store operation the block does to the current watcher, if any."""
    watcher = WATCH.get()
    if watcher is None:
        yield
        return
    started = time.time_ns()
    try:
        yield
    except BaseException as exc:
        watcher.store_operation(store, operation, started, exc)
        raise
    watcher.store_operation(store, operation, started, None)
