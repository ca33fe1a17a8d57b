"""Which of a backend's failures send a request on to the next backend: ``fallback_on``.

A route's ``fallback_on`` names kinds of upstream failure, in the vocabulary
of :mod:`translator._http.failures` (the metrics' ``kind`` label), or statuses
the upstream answered (``"503"``, ``"404"``: its own status, not the one a
client is shown). Three names are kept for what they always meant:
``connect`` is ``unavailable``; ``5xx`` covers ``auth`` and ``other`` too (the
client is shown a server error for each); ``"429"`` is ``rate_limited``.

A ``4xx`` is the client's error: it would most likely fail on the next
backend too, or worse, be answered differently, so no route falls back on it
unless its ``fallback_on`` names it (or one of its statuses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._http import Failure, failure_of
from ..errors import UpstreamStatusError

__all__ = ["FALLBACK_NAMES", "FallbackPolicy", "is_fallback_status"]

FALLBACK_NAMES: Mapping[str, frozenset[Failure]] = {
    kind.value: frozenset({kind}) for kind in Failure
} | {
    "connect": frozenset({Failure.UNAVAILABLE}),
    "5xx": frozenset({Failure.SERVER_ERROR, Failure.AUTH, Failure.OTHER}),
}
"""The kinds each name ``fallback_on`` may give stands for (a status aside): every
kind by its own name, and the names kept for what they always meant."""


def is_fallback_status(text: str) -> bool:
    """Whether ``text`` is a status ``fallback_on`` may name: an upstream's 4xx or 5xx."""
    return text.isdigit() and 400 <= int(text) <= 599


class FallbackPolicy:
    """A route's ``fallback_on``, compiled: whether a failure moves on to the next backend."""

    __slots__ = ("_kinds", "_statuses")

    def __init__(self, fallback_on: Iterable[str]) -> None:
        names = set(fallback_on)
        self._statuses = frozenset(int(n) for n in names if n.isdigit())
        self._kinds = frozenset(k for n in names for k in FALLBACK_NAMES.get(n, ()))

    def allows(self, error: BaseException) -> bool:
        """Whether the next backend may be tried after ``error``."""
        kind = failure_of(error)
        if kind is None:
            return False
        if kind in self._kinds:
            return True
        status = error.upstream_status if isinstance(error, UpstreamStatusError) else None
        return status is not None and status in self._statuses
