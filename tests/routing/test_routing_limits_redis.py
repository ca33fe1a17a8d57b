"""Rate limits counted in a real Redis hold across two server processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as aioredis

from benchmarks.redis_server import RedisServer
from tests.serve_process import Served, start_serve, stop
from translator._routing import RateLimiter, RateLimitSettings, Route
from translator.errors import RateLimitError, StoreUnavailableError
from translator.stores._settings import StoreSettings

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def two_servers(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> Iterator[list[str]]:
    """Two ``translator serve`` processes whose stores, and so rate limits, are in one Redis."""
    config = tmp_path / "limits.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\napi_keys = ["k1", "k2"]\n'
        "[rate_limits]\nrequests_per_minute = 5\n"
        f'[stores]\nsessions = "{redis_server.url}"\nfiles = "{redis_server.url}"\n'
        f'prefix = "{redis_prefix}"\n'
        '[backends.echo]\nplugin = "echo"\n'
        '[[routes]]\nmodel = "m"\nbackend = "echo"\n'
    )
    served: list[Served] = []
    try:
        for _ in range(2):
            served.append(start_serve("--config", str(config), cwd=tmp_path))
        yield [s.base for s in served]
    finally:
        for s in served:
            stop(s)


async def test_two_processes_share_one_limit(two_servers: list[str]) -> None:
    clients = [openai.AsyncOpenAI(base_url=b, api_key="k1", max_retries=0) for b in two_servers]
    other = openai.AsyncOpenAI(base_url=two_servers[1], api_key="k2", max_retries=0)
    outcomes = []
    left = 60 - time.time() % 60
    if left < 3:  # let the minute turn first, so that all eight fall in one
        await asyncio.sleep(left + 0.1)
    try:
        for i in range(8):  # alternating between the two processes
            try:
                await clients[i % 2].chat.completions.create(model="m", messages=HELLO)
                outcomes.append("ok")
            except openai.RateLimitError as exc:
                outcomes.append("429" if exc.response.headers["Retry-After"].isdigit() else "?")
        # Another key's count is its own.
        await other.chat.completions.create(model="m", messages=HELLO)
    finally:
        for client in [*clients, other]:
            await client.close()
    # 5 a minute in all, not 5 in each process.
    assert outcomes == ["ok"] * 5 + ["429"] * 3


async def test_redis_counters_expire_with_their_window(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    now = [600.0]
    stores = StoreSettings(sessions=redis_server.url, files="memory", prefix=redis_prefix)
    settings = RateLimitSettings(tokens_per_minute=10)
    limiter = RateLimiter.configured(settings, stores, clock=lambda: now[0])
    route = Route("m", "a")
    try:
        await limiter.admit("k", route)
        await limiter.spend("k", route, 12)
        with pytest.raises(RateLimitError) as caught:
            await limiter.admit("k", route)
        assert caught.value.retry_after == 60
        now[0] = 660.0  # the next minute
        await limiter.admit("k", route)
    finally:
        await limiter.aclose()
    direct = aioredis.Redis.from_url(redis_server.url)
    try:
        ttl = await direct.ttl(f"{redis_prefix}ratelimit:k:tokens:10")
    finally:
        await direct.aclose()
    assert 0 < ttl <= 120  # a window's count goes away by itself


async def test_a_redis_that_is_down_is_a_503_not_a_hang() -> None:
    stores = StoreSettings(sessions="redis://127.0.0.1:1/0", files="memory", timeout=0.5)
    limiter = RateLimiter.configured(RateLimitSettings(requests_per_minute=10), stores)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await limiter.admit("k", Route("m", "a"))
    finally:
        await limiter.aclose()
    assert caught.value.status == 503
