"""Routing: which backends may answer a model, in what order, and how often.

- :mod:`.settings`: ``[[routes]]``, ``[routing]`` and ``[rate_limits]``, as structs.
- :mod:`.table`: model -> route.
- :mod:`.strategies`: the order a route offers its backends to one request.
- :mod:`.fallback`: which of a backend's failures move a request on to the next.
- :mod:`.health`: passive health, cool-down and half-open probes; requests in flight.
- :mod:`.dispatch`: one request along its route, matrix-aware, with fallback.
- :mod:`.limits`: per-key requests and tokens per minute, in process or in Redis.
"""

from .dispatch import Dispatcher, Routed, RoutedStream
from .fallback import FALLBACK_NAMES, FallbackPolicy
from .health import BackendState, Health
from .limits import Counters, MemoryCounters, RateLimiter, RedisCounters
from .settings import HealthSettings, RateLimitSettings, Route, Strategy
from .table import RouteTable, listed_models

__all__ = [
    "FALLBACK_NAMES",
    "BackendState",
    "Counters",
    "Dispatcher",
    "FallbackPolicy",
    "Health",
    "HealthSettings",
    "MemoryCounters",
    "RateLimitSettings",
    "RateLimiter",
    "RedisCounters",
    "Route",
    "RouteTable",
    "Routed",
    "RoutedStream",
    "Strategy",
    "listed_models",
]
