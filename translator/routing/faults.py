"""Which failures are the backend's, and which of those send a request to the next backend.

A failure is the backend's when it could not be reached (``connect``), did not
answer in time (``timeout``), answered a server error (``5xx``, the upstream
refusing the translator's own credentials included), asked to slow down
(``429``), or answered what could not be understood (``malformed``). Those
count against its health. Anything else (a 400 for the client's request, a
404, the matrix refusing a field) is the client's, and is never retried on
another backend: it would fail there too, or worse, be answered differently.

A route's ``fallback_on`` says which of the backend's failures move on to
the next backend: by class, or by the status the upstream answered (``"503"``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import (
    MalformedUpstreamError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["FallbackPolicy", "fault_of"]


def fault_of(error: BaseException) -> str | None:
    """The class of a failure that is the backend's, or None for one that is not."""
    if isinstance(error, UpstreamTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, UpstreamUnavailableError):
        return "connect"
    if isinstance(error, MalformedUpstreamError):
        return "malformed"
    if isinstance(error, UpstreamStatusError):
        status = error.upstream_status
        if status == 429:
            return "429"
        return "5xx" if status >= 500 or error.status >= 500 else None
    if isinstance(error, UpstreamError):
        return "5xx" if error.status >= 500 else None
    return None


class FallbackPolicy:
    """A route's ``fallback_on``, compiled: whether a failure moves on to the next backend."""

    __slots__ = ("_classes", "_statuses")

    def __init__(self, fallback_on: Iterable[str]) -> None:
        kinds = set(fallback_on)
        self._statuses = frozenset(int(k) for k in kinds if k.isdigit())
        self._classes = frozenset(k for k in kinds if not k.isdigit())

    def allows(self, error: BaseException) -> bool:
        """Whether the next backend may be tried after ``error``."""
        kind = fault_of(error)
        if kind is None:
            return False
        if kind in self._classes:
            return True
        status = error.upstream_status if isinstance(error, UpstreamStatusError) else None
        return status is not None and status in self._statuses
