"""What the configuration says about routing: routes, health, and per-key rate limits.

::

    [[routes]]
    model = "vlm-agent-1"
    backends = ["agent-eu", "agent-us"]    # or backend = "agent" for one
    strategy = "fallback"                  # round-robin | least-busy | weighted
    weights = { agent-eu = 3, agent-us = 1 }
    models = { agent-us = "vlm-agent-1-us" }   # the model name each backend is sent
    fallback_on = ["connect", "timeout", "5xx", "429"]
    attempt_timeout = 30.0                 # seconds one attempt may take before the next
    requests_per_minute = 60               # per API key, on this route
    tokens_per_minute = 20000

    [routing]
    cooldown_after = 3                     # consecutive failures that cool a backend down
    cooldown_seconds = 30.0                # then one probe request is let through

    [rate_limits]                          # per API key (one bucket without keys)
    requests_per_minute = 600
    tokens_per_minute = 200000
    redis_url = "redis://127.0.0.1:6379/0" # shared counters; unset: the sessions' Redis
                                           # when [stores] sessions is one, else in process
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from .fallback import FALLBACK_NAMES, is_fallback_status

__all__ = [
    "HealthSettings",
    "RateLimitSettings",
    "Route",
    "Strategy",
]

Positive = Annotated[int, Meta(gt=0)]
Seconds = Annotated[float, Meta(gt=0)]


class Strategy(enum.StrEnum):
    """How a route orders its backends for each request."""

    FALLBACK = "fallback"
    """In the order given; the next only when one fails."""
    ROUND_ROBIN = "round-robin"
    """Each request starts at the next backend."""
    LEAST_BUSY = "least-busy"
    """The backend with the fewest requests in flight first."""
    WEIGHTED = "weighted"
    """Smooth weighted round-robin: a backend of weight 3 starts three requests in four."""


class Route(msgspec.Struct, forbid_unknown_fields=True):
    """A ``[[routes]]`` entry: requests for ``model`` go to ``backend`` or ``backends``."""

    model: Annotated[str, Meta(min_length=1)]
    """An exact model name, or a prefix ending in ``*``."""
    backend: str | None = None
    backends: list[str] = msgspec.field(default_factory=list)
    strategy: Strategy = Strategy.FALLBACK
    weights: dict[str, Positive] = msgspec.field(default_factory=dict)
    """Per backend, for ``weighted`` (1 when left out)."""
    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Per backend, the model name it is sent in place of the client's."""
    fallback_on: list[str] = msgspec.field(
        default_factory=lambda: ["connect", "timeout", "5xx", "429"]
    )
    """The failures after which the next backend is tried (:mod:`.fallback`): kinds of
    failure, or the upstream's statuses; a 4xx only when named."""
    attempt_timeout: Seconds | None = None
    """Seconds one attempt may take (within what remains of the request's deadline)."""
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None

    @property
    def is_prefix(self) -> bool:
        return self.model.endswith("*")

    @property
    def candidates(self) -> list[str]:
        """The backends of the route, in the order given."""
        return self.backends or ([self.backend] if self.backend is not None else [])

    def problem(self) -> str | None:
        """What is wrong with the route on its own (``key: why``), if anything."""
        if self.backend is None and not self.backends:
            return "backend: required key is missing (or give backends = [...])"
        if self.backend is not None and self.backends:
            return "backends: give backend or backends, not both"
        if len(set(self.backends)) != len(self.backends):
            return "backends: a backend is named twice"
        if "*" in self.model[:-1]:
            return f"model: '*' may only end a model pattern (got {self.model!r})"
        if self.weights and self.strategy is not Strategy.WEIGHTED:
            shown = self.strategy.value
            return f"weights: only strategy = 'weighted' reads them (this route's is {shown!r})"
        names = set(self.candidates)
        for key, table in (("weights", self.weights), ("models", self.models)):
            stray = sorted(set(table) - names)
            if stray:
                return f"{key}: {', '.join(stray)} is not one of the route's backends"
        bad = [n for n in self.fallback_on if n not in FALLBACK_NAMES and not is_fallback_status(n)]
        if bad:
            known = ", ".join(sorted(FALLBACK_NAMES))
            return f"fallback_on: {bad[0]!r} is neither a status (400-599) nor one of {known}"
        return None


class HealthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[routing]`` table: passive health of every backend."""

    cooldown_after: Positive = 3
    """Consecutive failed attempts after which a backend is cooled down."""
    cooldown_seconds: Seconds = 30.0
    """How long a backend stays cooled down; then one probe request is let through."""


class RateLimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[rate_limits]`` table: per API key, per minute."""

    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    redis_url: str | None = None
    """Count in this Redis, so that the limits hold across processes and replicas;
    unset, in the sessions' Redis when ``[stores] sessions`` is one, else in process."""
