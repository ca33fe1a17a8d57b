"""A :class:`~translator._backend.SharedCache` in Redis: each value made once across replicas.

``remember(key, make)`` reads ``c:<key>``; when it is missing, the process
that wins ``SET c:<key>:lock NX PX`` calls ``make()`` and stores its value,
while the others poll (from 20 ms, doubling, to 500 ms) until the value
appears or the lock goes (its holder failed: one of them makes it then). The
lock expires after ``lock_ttl`` seconds, so a process that died holding it
delays the others by that much at most. ``forget`` deletes the value only if
it is still the one given (compare and delete, one script), so a replica
that finds a value stale never drops the fresh one another has just made.
Values are kept ``ttl`` seconds (None: until forgotten).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import cast

from ._redis_link import RedisLink

__all__ = ["RedisCache"]

_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FIRST_WAIT = 0.02
_LONGEST_WAIT = 0.5


class RedisCache:
    """Values under ``c:`` in the Redis of ``link``."""

    def __init__(
        self, link: RedisLink, *, ttl: float | None = 24 * 3600.0, lock_ttl: float = 300.0
    ) -> None:
        if (ttl is not None and ttl <= 0) or lock_ttl <= 0:
            raise ValueError("ttl and lock_ttl must be positive")
        self.link = link
        self.ttl = ttl
        self.lock_ttl = lock_ttl
        self._delete_if = link.client.register_script(_DELETE_IF)

    async def remember(self, key: str, make: Callable[[], Awaitable[str | None]]) -> str | None:
        client = self.link.client
        name = self.link.key("c", key)
        lock = name + ":lock"
        token = secrets.token_hex(8)
        wait = _FIRST_WAIT
        while True:
            async with self.link.guard("cache"):
                value = cast(bytes | None, await client.get(name))
                if value is not None:
                    return value.decode()
                claimed = await client.set(lock, token, nx=True, px=int(self.lock_ttl * 1000))
            if claimed:
                break
            await asyncio.sleep(wait)  # another process is making it
            wait = min(wait * 2, _LONGEST_WAIT)
        try:
            made = await make()
            if made is not None:
                async with self.link.guard("cache"):
                    ttl = None if self.ttl is None else int(self.ttl * 1000)
                    await client.set(name, made, px=ttl)
            return made
        finally:
            async with self.link.guard("cache"):
                await self._delete_if(keys=[lock], args=[token])

    async def forget(self, key: str, value: str) -> None:
        async with self.link.guard("cache"):
            await self._delete_if(keys=[self.link.key("c", key)], args=[value])
