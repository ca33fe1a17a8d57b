"""One Redis connection pool for the stores, and what its faults become.

Every Redis store holds a :class:`RedisLink`: the ``redis`` package's asyncio
client (one connection pool per process), the key prefix that keeps this
deployment's keys apart, and the time any one store operation may take.

Fault policy, in one place: an operation that does not finish within
``timeout`` seconds, or that fails for any reason Redis or the network gives
(refused, reset, timed out, a server error), raises
:class:`~translator.errors.StoreUnavailableError` (503 ``store_unavailable``),
never a hang or a 500. Nothing is retried here beyond one reconnect: the pool
opens a fresh connection on the next call, so the stores recover by
themselves once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..errors import StoreUnavailableError

__all__ = ["RedisLink"]

log = logging.getLogger("translator.stores")


class RedisLink:
    """A client for the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "translator:",
        password: str | None = None,
        timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.prefix = prefix
        self.timeout = timeout
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 1),
        )
        self._where = _redact(url)

    def key(self, *parts: str) -> str:
        """A key of this deployment: the prefix, then ``parts`` joined by ``:``."""
        return self.prefix + ":".join(parts)

    @asynccontextmanager
    async def guard(self, what: str) -> AsyncIterator[None]:
        """Run the block within ``timeout``; any Redis fault is a :class:`StoreUnavailableError`."""
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            # The client is told what failed, not where: the detail goes to the log.
            log.warning("%s store at %s: %s", what, self._where, _reason(exc, self.timeout))
            raise StoreUnavailableError(
                f"The {what} store is unavailable; try again shortly."
            ) from exc

    async def ping(self, what: str) -> None:
        """PING, under :meth:`guard` (for ``/ready``)."""
        async with self.guard(what):
            await self.client.ping()

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self.client.aclose()


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _redact(url: str) -> str:
    """``url`` without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    _, at, host = rest.rpartition("@")
    return f"{scheme}://{host}" if at else url
