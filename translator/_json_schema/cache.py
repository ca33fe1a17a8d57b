"""A least-recently-used cache bounded by the total of its entries' costs, not their count.

Each entry is stored with a cost (an estimate of the memory it holds, in
bytes); storing one past the :class:`CostBoundedCache`'s budget evicts the
least recently used entries until the total fits again. An entry costing more
than the whole budget is not stored (the caller uses it once), and evicts
nothing. Reading an entry makes it the most recently used. It may be shared
by threads (a library user's): each call holds the cache's lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["CostBoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CostBoundedCache(Generic[K, V]):
    """Values (never None) by key, at most :attr:`budget` in total cost, least recently
    used evicted first."""

    __slots__ = ("_costs", "_entries", "_lock", "budget", "cost")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.cost = 0
        """The total cost of the entries held."""
        self._entries: OrderedDict[K, V] = OrderedDict()  # least recently used first
        self._costs: dict[K, int] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored for ``key`` (now the most recently used), or None."""
        entries = self._entries
        with self._lock:
            try:
                entries.move_to_end(key)
            except KeyError:
                return None
            return entries[key]

    def put(self, key: K, value: V, cost: int) -> None:
        """Store ``value`` for ``key`` at ``cost``, evicting what it takes to stay in budget;
        a value costing more than the whole budget is not stored."""
        if cost > self.budget:
            return
        entries, costs = self._entries, self._costs
        with self._lock:
            self._forget(key)
            while entries and self.cost + cost > self.budget:
                oldest, _ = entries.popitem(last=False)
                self.cost -= costs.pop(oldest)
            entries[key] = value
            costs[key] = cost
            self.cost += cost

    def pop(self, key: K) -> None:
        """Forget ``key``'s entry, if there is one."""
        with self._lock:
            self._forget(key)

    def _forget(self, key: K) -> None:
        if self._entries.pop(key, None) is not None:
            self.cost -= self._costs.pop(key)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self._costs.clear()
            self.cost = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
