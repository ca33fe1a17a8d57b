"""Strategies: the order in which a route's backends are offered one request.

Each returns every backend of the route, the one to try first at the head;
the rest are the fallbacks, in order. The dispatcher then leaves out the
backends whose matrix refuses the request or which are cooled down, and puts
those that would drop fields after those that keep them all.

- ``fallback``: the order of the configuration, every time.
- ``round-robin``: request *k* starts at backend *k mod n*, the rest follow in turn.
- ``least-busy``: fewest requests in flight first (ties in configuration order).
- ``weighted``: smooth weighted round-robin (as nginx does it): over any run of
  requests, each backend starts a share equal to its weight's, spread out
  rather than in bursts; the rest follow by weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .health import Health
from .settings import Strategy

__all__ = ["Order", "strategy_order"]

Order = Callable[[], Sequence[str]]
"""Called once per request: the backends in the order to try them."""


def strategy_order(
    strategy: Strategy, backends: Sequence[str], weights: Mapping[str, int], health: Health
) -> Order:
    """The :data:`Order` for ``strategy`` over ``backends``."""
    names = tuple(backends)
    if len(names) == 1 or strategy is Strategy.FALLBACK:
        return lambda: names
    if strategy is Strategy.ROUND_ROBIN:
        return _RoundRobin(names)
    if strategy is Strategy.LEAST_BUSY:
        in_flight = health.in_flight
        return lambda: sorted(names, key=in_flight)
    return _Weighted(names, [weights.get(b, 1) for b in names])


class _RoundRobin:
    __slots__ = ("_names", "_next")

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._next = 0

    def __call__(self) -> Sequence[str]:
        i = self._next
        self._next = (i + 1) % len(self._names)
        return self._names[i:] + self._names[:i]


class _Weighted:
    __slots__ = ("_current", "_names", "_total", "_weights")

    def __init__(self, names: tuple[str, ...], weights: list[int]) -> None:
        self._names = names
        self._weights = weights
        self._total = sum(weights)
        self._current = [0] * len(names)

    def __call__(self) -> Sequence[str]:
        current = self._current
        best = 0
        for i, weight in enumerate(self._weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        rest = sorted(
            (i for i in range(len(self._names)) if i != best), key=lambda i: -self._weights[i]
        )
        return [self._names[best], *(self._names[i] for i in rest)]
