"""Every session store keeps the same promises: memory, SQLite (local, durable) and Redis.

The Redis store runs against a real ``redis-server``; its atomic append is
checked with two clients appending to one session at once, as two replicas do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from benchmarks.redis_server import RedisServer
from translator._model import (
    AssistantMessage,
    FunctionCall,
    FunctionToolCall,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from translator.stores import MemorySessionStore, SessionStore
from translator.stores._redis_link import RedisLink
from translator.stores._redis_sessions import RedisSessionStore
from translator.stores._sqlite_sessions import SQLiteSessionStore

KINDS = ["memory", "sqlite", "redis"]
Make = Callable[..., SessionStore]


def turn(n: int) -> list[Message]:
    return [UserMessage(f"question {n}"), AssistantMessage(content=f"answer {n}")]


def texts(messages: list[Message]) -> list[str]:
    return [m.content if isinstance(m.content, str) else "<other>" for m in messages]


@pytest.fixture(params=KINDS)
async def make(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Make]:
    """``make(**bounds)``: a fresh store of the kind under test."""
    made: list[SessionStore] = []
    links: list[RedisLink] = []

    def build(**bounds: float) -> SessionStore:
        store: SessionStore
        if request.param == "memory":
            store = MemorySessionStore(**bounds)  # type: ignore[arg-type]
        elif request.param == "sqlite":
            store = SQLiteSessionStore(tmp_path / f"s{len(made)}.sqlite3", **bounds)  # type: ignore[arg-type]
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            link = RedisLink(server.url, prefix=f"{redis_prefix}{len(made)}:")
            links.append(link)
            store = RedisSessionStore(link, **bounds)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield build
    for store in made:
        await store.aclose()
    for link in links:
        await link.aclose()


async def test_turns_accumulate_in_order_per_session(make: Make) -> None:
    store = make()
    assert await store.load("s") == []
    await store.append("s", turn(1))
    await store.append("s", turn(2))
    await store.append("other", turn(9))
    assert texts(await store.load("s")) == ["question 1", "answer 1", "question 2", "answer 2"]
    assert texts(await store.load("other")) == ["question 9", "answer 9"]


async def test_messages_come_back_equal_to_what_was_stored(make: Make) -> None:
    store = make()
    call = FunctionToolCall("call_1", FunctionCall("lookup", '{"q": "x"}'))
    stored: list[Message] = [
        SystemMessage("be brief"),
        UserMessage("look it up"),
        AssistantMessage(tool_calls=[call]),
        ToolMessage("found", tool_call_id="call_1"),
        AssistantMessage(content="it is x"),
    ]
    await store.append("s", stored)
    assert await store.load("s") == stored


async def test_newer_instructions_replace_the_stored_ones(make: Make) -> None:
    store = make()
    await store.append("s", [SystemMessage("be brief"), *turn(1)])
    await store.append("s", turn(2))
    assert texts(await store.load("s"))[:2] == ["be brief", "question 1"]
    await store.append("s", [SystemMessage("be long"), *turn(3)])
    assert texts(await store.load("s")) == [
        "be long", "question 1", "answer 1", "question 2", "answer 2", "question 3", "answer 3",
    ]  # fmt: skip


async def test_clear_forgets_the_session(make: Make) -> None:
    store = make()
    await store.append("s", turn(1))
    await store.clear("s")
    assert await store.load("s") == []


async def test_the_oldest_turns_go_first_and_the_history_restarts_at_a_question(
    make: Make,
) -> None:
    store = make(max_messages=5)
    for n in range(1, 5):
        await store.append("s", turn(n))
    # Five would keep "answer 2" first; the kept history starts at a question.
    assert texts(await store.load("s")) == ["question 3", "answer 3", "question 4", "answer 4"]


async def test_a_session_over_its_bytes_loses_its_oldest_turns(make: Make) -> None:
    store = make(max_bytes=400)
    for n in range(1, 20):
        await store.append("s", turn(n))
    kept = texts(await store.load("s"))
    assert kept[-2:] == ["question 19", "answer 19"]
    assert kept[0].startswith("question ")
    assert 2 <= len(kept) < 38


async def test_idle_sessions_expire(make: Make, request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.params["make"]
    if kind == "redis":  # Redis's own clock: a short real TTL
        store = make(idle_ttl=0.3)
        await store.append("s", turn(1))
        await store.append("t", turn(2))
        await asyncio.sleep(0.15)
        assert await store.load("t") != []  # a load renews the TTL
        await asyncio.sleep(0.2)
        assert await store.load("s") == []
        assert await store.load("t") != []
        return
    now = [1000.0]
    store = make(idle_ttl=60, clock=lambda: now[0])
    await store.append("s", turn(1))
    now[0] += 59
    assert await store.load("s") != []
    now[0] += 59
    assert await store.load("s") != []  # the load above renewed it
    now[0] += 61
    assert await store.load("s") == []


@pytest.mark.parametrize("make", ["sqlite", "redis"], indirect=True)
async def test_concurrent_appends_from_two_clients_keep_every_turn_whole(
    make: Make, request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> None:
    """Two stores on one database, as two processes or replicas have."""
    kind = request.node.callspec.params["make"]
    first = make(max_messages=1000)
    if kind == "redis":
        link = RedisLink(request.getfixturevalue("redis_server").url, prefix=f"{redis_prefix}0:")
        second: SessionStore = RedisSessionStore(link, max_messages=1000)
    else:
        assert isinstance(first, SQLiteSessionStore)
        second = SQLiteSessionStore(first.path, max_messages=1000)
    try:
        await asyncio.gather(
            *(store.append("s", turn(n)) for n in range(60) for store in (first, second))
        )
        kept = texts(await second.load("s"))
    finally:
        await second.aclose()
        if kind == "redis":
            await link.aclose()
    assert len(kept) == 240  # 120 turns of two messages
    pairs = list(zip(kept[::2], kept[1::2], strict=True))
    assert all(q == a.replace("answer", "question") for q, a in pairs)


async def test_a_sqlite_store_keeps_sessions_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "sessions.sqlite3"
    store = SQLiteSessionStore(path)
    await store.append("s", [SystemMessage("be brief"), *turn(1)])
    await store.aclose()
    again = SQLiteSessionStore(path)
    assert texts(await again.load("s")) == ["be brief", "question 1", "answer 1"]
    await again.aclose()


async def test_a_redis_that_lost_its_data_starts_the_session_afresh(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    link = RedisLink(redis_server.url, prefix=redis_prefix)
    store = RedisSessionStore(link)
    try:
        await store.append("s", turn(1))
        await link.client.flushall()
        assert await store.load("s") == []
        await store.append("s", turn(2))
        assert texts(await store.load("s")) == ["question 2", "answer 2"]
    finally:
        await link.aclose()


async def test_redis_keys_are_under_the_prefix_and_expire(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    link = RedisLink(redis_server.url, prefix=redis_prefix)
    store = RedisSessionStore(link, idle_ttl=120)
    try:
        await store.append("key-abc/s", [SystemMessage("x"), *turn(1)])
        keys = sorted(k.decode() for k in await link.client.keys(f"{redis_prefix}*"))
        assert keys == [f"{redis_prefix}s:key-abc/s:i", f"{redis_prefix}s:key-abc/s:t"]
        for key in keys:
            assert 0 < await link.client.pttl(key) <= 120_000
    finally:
        await link.aclose()
