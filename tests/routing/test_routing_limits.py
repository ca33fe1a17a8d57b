"""Per-key rate limits through the real server: a 429 with an OpenAI body and Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from tests.routing_upstreams import StandIn, backend_table, routed_server, stand_ins
from translator._routing import MemoryCounters, RateLimiter, RateLimitSettings, Route
from translator.errors import RateLimitError

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def up() -> AsyncIterator[StandIn]:
    async with stand_ins("a") as ups:
        yield ups["a"]


def config(up: StandIn, limits: str, route: str = "") -> str:
    return (
        '[server]\napi_keys = ["k1", "k2"]\n'
        + f"[rate_limits]\n{limits}\n"
        + backend_table("a", up.base_url)
        + f'[[routes]]\nmodel = "m"\nbackend = "a"\n{route}'
        + '[[routes]]\nmodel = "other"\nbackend = "a"\n'
    )


def client_for(client: openai.AsyncOpenAI, key: str) -> openai.AsyncOpenAI:
    return client.with_options(api_key=key)


async def test_requests_per_minute_per_key(up: StandIn) -> None:
    async with routed_server(config(up, "requests_per_minute = 2")) as (_, client):
        k1, k2 = client_for(client, "k1"), client_for(client, "k2")
        for _ in range(2):
            await k1.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as caught:
            await k1.chat.completions.create(model="m", messages=HELLO)
        # Another key has its own count; a refused request never reaches the upstream.
        await k2.chat.completions.create(model="m", messages=HELLO)
    response = caught.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = response.json()["error"]
    assert body["code"] == "rate_limit_exceeded"
    assert body["type"] == "rate_limit_error"
    assert "2 requests per minute" in body["message"]
    assert len(up.bodies) == 3


async def test_tokens_per_minute_count_what_answers_used(up: StandIn) -> None:
    # Each answer uses 10 tokens (the stand-in's usage): the third request is refused.
    async with routed_server(config(up, "tokens_per_minute = 20")) as (_, client):
        k1 = client_for(client, "k1")
        await k1.chat.completions.create(model="m", messages=HELLO)
        stream = await k1.chat.completions.create(model="m", messages=HELLO, stream=True)
        async for _ in stream:  # no usage in this stream: its text is estimated
            pass
        await k1.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as caught:
            await k1.chat.completions.create(model="m", messages=HELLO)
    assert "20 tokens per minute" in caught.value.message


async def test_a_route_may_have_limits_of_its_own(up: StandIn) -> None:
    limits = "requests_per_minute = 100"
    async with routed_server(config(up, limits, "requests_per_minute = 1\n")) as (_, client):
        k1 = client_for(client, "k1")
        await k1.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as caught:
            await k1.chat.completions.create(model="m", messages=HELLO)
        await k1.chat.completions.create(model="other", messages=HELLO)
    assert "on model 'm'" in caught.value.message


async def test_a_new_minute_starts_a_new_count() -> None:
    now = [120.0]
    limiter = RateLimiter(
        RateLimitSettings(requests_per_minute=1),
        MemoryCounters(lambda: now[0]),
        clock=lambda: now[0],
    )
    route = Route("m", "a")
    await limiter.admit("k", route)
    now[0] = 150.0
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit("k", route)
    assert caught.value.retry_after == 30
    now[0] = 180.0
    await limiter.admit("k", route)
