"""Routing: which backends may answer a model, in what order, and how often.

- :mod:`.settings`: ``[[routes]]``, ``[routing]`` and ``[rate_limits]``, as structs.
- :mod:`.table`: model -> route.
- :mod:`.strategies`: the order a route offers its backends to one request.
- :mod:`.faults`: which failures are the backend's, and which move on to the next.
- :mod:`.health`: passive health, cool-down and half-open probes; requests in flight.
- :mod:`.dispatch`: one request along its route, matrix-aware, with fallback.
- :mod:`.limits`: per-key requests and tokens per minute, in process or in Redis.
"""

from .dispatch import Dispatcher, Routed, RoutedStream
from .faults import FallbackPolicy, fault_of
from .health import BackendState, Health
from .limits import Counters, MemoryCounters, RateLimiter, RedisCounters
from .settings import FALLBACK_CLASSES, HealthSettings, RateLimitSettings, Route, Strategy
from .table import RouteTable, listed_models

__all__ = [
    "FALLBACK_CLASSES",
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
    "fault_of",
    "listed_models",
]
