"""The shared cache in Redis: a value is made once across processes, forgotten with care."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from benchmarks.redis_server import RedisServer
from translator.stores._redis_cache import RedisCache
from translator.stores._redis_link import RedisLink


@pytest.fixture
async def caches(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[list[RedisCache]]:
    """Two caches on two connection pools, as two replicas have."""
    links = [RedisLink(redis_server.url, prefix=redis_prefix) for _ in range(2)]
    yield [RedisCache(link) for link in links]
    for link in links:
        await link.aclose()


async def test_a_value_is_made_once_while_every_process_waits_for_it(
    caches: list[RedisCache],
) -> None:
    made: list[int] = []

    async def make() -> str:
        made.append(1)
        await asyncio.sleep(0.2)  # an upload in flight
        return "agent-file-1"

    got = await asyncio.gather(*(c.remember("k", make) for c in caches for _ in range(4)))
    assert got == ["agent-file-1"] * 8
    assert len(made) == 1
    assert await caches[1].remember("k", make) == "agent-file-1"
    assert len(made) == 1


async def test_forget_drops_only_the_value_it_names(caches: list[RedisCache]) -> None:
    async def first() -> str:
        return "old"

    async def second() -> str:
        return "new"

    assert await caches[0].remember("k", first) == "old"
    await caches[0].forget("k", "old")
    assert await caches[1].remember("k", second) == "new"
    await caches[0].forget("k", "old")  # stale: the fresh value stays
    assert await caches[0].remember("k", first) == "new"


async def test_a_failed_make_leaves_the_next_caller_to_make_it(caches: list[RedisCache]) -> None:
    async def broken() -> str:
        raise ConnectionError("upload failed")

    async def works() -> str:
        return "agent-file-2"

    with pytest.raises(ConnectionError):
        await caches[0].remember("k", broken)
    assert await asyncio.wait_for(caches[1].remember("k", works), 2) == "agent-file-2"


async def test_nothing_is_kept_when_there_is_nothing_to_keep(caches: list[RedisCache]) -> None:
    calls: list[int] = []

    async def unknown() -> None:
        calls.append(1)

    assert await caches[0].remember("k", unknown) is None
    assert await caches[1].remember("k", unknown) is None
    assert len(calls) == 2
