"""Per-key rate limits: requests and tokens per minute.

Each API key (all callers together when the server asks for no key) may make
``requests_per_minute`` requests and spend ``tokens_per_minute`` tokens in a
minute, across every route; a route may set its own limits too, per key, on
that route alone. Minutes are fixed windows of the wall clock: a request
counts in the minute it arrives, a refused one included; its tokens (the
usage the backend reported, else an estimate) count once it is answered.
A request past a limit is a 429 with an OpenAI ``rate_limit_exceeded`` body
and ``Retry-After``, the seconds left in the minute.

The counters are kept in Redis (:class:`RedisCounters`) when
``rate_limits.redis_url`` names one or the session store is in Redis, so that
the limits hold across ``--workers`` and replicas; otherwise in this process
(:class:`MemoryCounters`). Each counter expires a minute after its window.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ..errors import RateLimitError
from ..stores._settings import REDIS_SCHEMES, StoreSettings
from .settings import RateLimitSettings, Route

if TYPE_CHECKING:
    from ..stores._redis_link import RedisLink

__all__ = ["Counters", "MemoryCounters", "RateLimiter", "RedisCounters"]

_WINDOW = 60


class Counters(Protocol):
    """Where the counts of each window are kept."""

    async def add(self, key: str, amount: int, ttl: int) -> int:
        """Add ``amount`` to ``key`` (created at 0, expiring ``ttl`` seconds on); the new count."""
        ...

    async def get(self, key: str) -> int:
        """The count of ``key``; 0 when there is none."""
        ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    """Counters of this process; a window's are forgotten once it has passed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._clock = clock

    async def add(self, key: str, amount: int, ttl: int) -> int:
        now = self._clock()
        count, expires = self._counts.get(key, (0, 0.0))
        if expires <= now:
            count = 0
            if len(self._counts) > 1024:
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        count += amount
        self._counts[key] = (count, now + ttl)
        return count

    async def get(self, key: str) -> int:
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > self._clock() else 0

    async def aclose(self) -> None:
        self._counts.clear()


class RedisCounters:
    """Counters in Redis, shared by every process that names the same server.

    A Redis fault is a 503 ``store_unavailable``, as for the stores.
    """

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def add(self, key: str, amount: int, ttl: int) -> int:
        name = self._link.key("ratelimit", key)
        async with (
            self._link.guard("rate limit"),
            self._link.client.pipeline(transaction=True) as pipe,
        ):
            pipe.incrby(name, amount)
            pipe.expire(name, ttl)
            count, _ = await pipe.execute()
        return int(count)

    async def get(self, key: str) -> int:
        async with self._link.guard("rate limit"):
            value = await self._link.client.get(self._link.key("ratelimit", key))
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        await self._link.aclose()


class RateLimiter:
    """The limits of the ``[rate_limits]`` table and of each route, over :class:`Counters`."""

    def __init__(
        self,
        settings: RateLimitSettings,
        counters: Counters | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.counters = counters or MemoryCounters(clock)
        self._clock = clock

    @classmethod
    def configured(
        cls,
        settings: RateLimitSettings,
        stores: StoreSettings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> RateLimiter:
        """Counting in ``settings.redis_url``, else in the sessions' Redis when the
        stores are in Redis, else in this process."""
        url = settings.redis_url
        if url is None and stores.sessions.startswith(REDIS_SCHEMES):
            url = stores.sessions
        if url is None:
            return cls(settings, clock=clock)
        try:
            from ..stores._redis_link import RedisLink
        except ImportError:
            raise ValueError(
                "rate_limits: counting in Redis needs the redis package: "
                "pip install 'openai-translator[redis]'"
            ) from None
        password = None
        if stores.password_env is not None:
            password = (os.environ if environ is None else environ).get(stores.password_env)
        link = RedisLink(url, prefix=stores.prefix, password=password, timeout=stores.timeout)
        return cls(settings, RedisCounters(link), clock=clock)

    def applies(self, route: Route) -> bool:
        """Whether any limit holds for requests on ``route``."""
        s = self.settings
        return any(
            v is not None
            for v in (
                s.requests_per_minute,
                s.tokens_per_minute,
                route.requests_per_minute,
                route.tokens_per_minute,
            )
        )

    def counts_tokens(self, route: Route) -> bool:
        return self.settings.tokens_per_minute is not None or route.tokens_per_minute is not None

    async def admit(self, caller: str | None, route: Route) -> None:
        """Count a request by ``caller`` on ``route``; :class:`RateLimitError` past a limit."""
        now = self._clock()
        window = int(now // _WINDOW)
        retry_after = max(1, math.ceil((window + 1) * _WINDOW - now))
        for scope, rpm, tpm in self._limits(caller, route):
            if tpm is not None:
                used = await self.counters.get(f"{scope}:tokens:{window}")
                if used >= tpm:
                    raise RateLimitError(
                        f"Rate limit reached: {tpm} tokens per minute{_on(route, scope)}. "
                        f"Try again in {retry_after} s.",
                        retry_after=retry_after,
                    )
            if rpm is not None:
                count = await self.counters.add(f"{scope}:requests:{window}", 1, 2 * _WINDOW)
                if count > rpm:
                    raise RateLimitError(
                        f"Rate limit reached: {rpm} requests per minute{_on(route, scope)}. "
                        f"Try again in {retry_after} s.",
                        retry_after=retry_after,
                    )

    async def spend(self, caller: str | None, route: Route, tokens: int) -> None:
        """Count ``tokens`` used by ``caller`` on ``route`` in the current minute."""
        if tokens <= 0:
            return
        window = int(self._clock() // _WINDOW)
        for scope, _, tpm in self._limits(caller, route):
            if tpm is not None:
                await self.counters.add(f"{scope}:tokens:{window}", tokens, 2 * _WINDOW)

    def _limits(self, caller: str | None, route: Route) -> list[tuple[str, int | None, int | None]]:
        who = caller or "anyone"
        s = self.settings
        limits = [(who, s.requests_per_minute, s.tokens_per_minute)]
        if route.requests_per_minute is not None or route.tokens_per_minute is not None:
            limits.append(
                (f"{who}:route:{route.model}", route.requests_per_minute, route.tokens_per_minute)
            )
        return limits

    async def aclose(self) -> None:
        await self.counters.aclose()


def _on(route: Route, scope: str) -> str:
    return f" on model '{route.model}'" if ":route:" in scope else " for this API key"
