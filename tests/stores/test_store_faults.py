"""Redis down, hung or emptied under a running server: bounded 503s, then recovery by itself.

Each test has a ``redis-server`` of its own, which it stops (SIGKILL), hangs
(SIGSTOP) or empties (FLUSHALL) while the server runs; the client is the
official OpenAI SDK.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from redis import asyncio as aioredis

from benchmarks.redis_server import RedisServer
from translator.config import parse_config
from translator.server import create_app, serving

TIMEOUT = 0.5
"""``stores.timeout``: how long a store may take before a request gets its 503."""


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)  # in case a test left it hung
    server.stop()


@pytest.fixture
async def sdk(redis: RedisServer) -> AsyncIterator[openai.AsyncOpenAI]:
    config = parse_config(
        f'[stores]\nsessions = "{redis.url}"\nfiles = "{redis.url}"\ntimeout = {TIMEOUT}\n'
    )
    async with serving(create_app(config)) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="-", max_retries=0)
        yield client
        await client.close()


async def chat(sdk: openai.AsyncOpenAI, text: str, session: str | None = None) -> Any:
    extra = {"session_id": session} if session else None
    return await sdk.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}], extra_body=extra, timeout=10
    )


async def assert_unavailable(call: Any) -> float:
    """The call fails with 503 ``store_unavailable``; how long that took."""
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        await call
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "store_unavailable"
    assert "try again" in body["message"]
    assert "127.0.0.1" not in body["message"]  # where the store is stays in the log
    return elapsed


@pytest.mark.parametrize("fault", ["stopped", "hung"])
async def test_without_redis_store_free_requests_work_and_the_rest_get_a_bounded_503(
    sdk: openai.AsyncOpenAI, redis: RedisServer, fault: str
) -> None:
    await chat(sdk, "first", session="s")
    uploaded = await sdk.files.create(file=("a.txt", b"data"), purpose="user_data")

    assert redis.process is not None
    if fault == "stopped":
        redis.stop()
    else:
        redis.process.send_signal(signal.SIGSTOP)

    assert (await chat(sdk, "no session needs no store")).choices[0].message.content == (
        "no session needs no store"
    )
    for call in (
        chat(sdk, "second", session="s"),
        sdk.files.list(),
        sdk.files.retrieve(uploaded.id),
        sdk.files.create(file=("b.txt", b"more"), purpose="user_data"),
    ):
        assert await assert_unavailable(call) < TIMEOUT + 2.0  # bounded, never a hang

    if fault == "stopped":
        redis.start()  # the same port; its data is gone (no persistence)
    else:
        redis.process.send_signal(signal.SIGCONT)
    # Recovery by itself: the next requests reconnect.
    reply = await chat(sdk, "third", session="s")
    assert reply.choices[0].message.content == "third"
    listed = [f.id for f in (await sdk.files.list()).data]
    assert listed == ([] if fault == "stopped" else [uploaded.id])


async def test_a_redis_that_lost_its_data_mid_session_starts_the_session_afresh(
    sdk: openai.AsyncOpenAI, redis: RedisServer
) -> None:
    first = await chat(sdk, "one two three", session="s")
    second = await chat(sdk, "four", session="s")
    assert second.usage.prompt_tokens > first.usage.prompt_tokens  # the history was sent
    admin = aioredis.Redis.from_url(redis.url)
    await admin.flushall()
    await admin.aclose()
    again = await chat(sdk, "four", session="s")
    assert again.choices[0].message.content == "four"
    assert again.usage.prompt_tokens < second.usage.prompt_tokens  # no history any more
