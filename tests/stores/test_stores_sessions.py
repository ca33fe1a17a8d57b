"""The in-memory session store: history, instructions, expiry, caps."""

from __future__ import annotations

import msgspec
import pytest

from translator._model import (
    AssistantMessage,
    DeveloperMessage,
    FunctionCall,
    FunctionToolCall,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from translator.stores import MemorySessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def turn(n: int) -> list[Message]:
    return [UserMessage(f"question {n}"), AssistantMessage(content=f"answer {n}")]


def texts(messages: list[Message]) -> list[str]:
    return [
        m.content if isinstance(m.content, str) else "<parts>"
        for m in messages
        if not isinstance(m, AssistantMessage) or m.content is not None
    ]


def tool_turn() -> list[Message]:
    call = FunctionToolCall("call_1", FunctionCall("lookup", '{"q": "x"}'))
    return [
        UserMessage("look it up"),
        AssistantMessage(tool_calls=[call]),
        ToolMessage("found", tool_call_id="call_1"),
        AssistantMessage(content="it is x"),
    ]


async def test_unknown_session_is_empty_and_not_created() -> None:
    store = MemorySessionStore()
    assert await store.load("nobody") == []
    assert "nobody" not in store
    assert store.live_sessions() == 0


async def test_appends_accumulate_in_order() -> None:
    store = MemorySessionStore()
    await store.append("s", turn(1))
    await store.append("s", turn(2))
    assert texts(await store.load("s")) == ["question 1", "answer 1", "question 2", "answer 2"]
    await store.append("other", turn(9))
    assert texts(await store.load("s")) == ["question 1", "answer 1", "question 2", "answer 2"]


async def test_load_returns_a_copy() -> None:
    store = MemorySessionStore()
    await store.append("s", turn(1))
    loaded = await store.load("s")
    loaded.append(UserMessage("not stored"))
    assert len(await store.load("s")) == 2


async def test_leading_instructions_are_kept_once_and_replaced_by_newer_ones() -> None:
    store = MemorySessionStore()
    await store.append("s", [SystemMessage("be brief"), *turn(1)])
    await store.append("s", turn(2))
    assert texts(await store.load("s"))[:2] == ["be brief", "question 1"]

    await store.append("s", [SystemMessage("be verbose"), DeveloperMessage("cite"), *turn(3)])
    loaded = await store.load("s")
    assert texts(loaded) == [
        "be verbose",
        "cite",
        *["question 1", "answer 1", "question 2", "answer 2", "question 3", "answer 3"],
    ]
    assert isinstance(loaded[1], DeveloperMessage)


async def test_clear_forgets_the_session() -> None:
    store = MemorySessionStore()
    await store.append("s", turn(1))
    await store.clear("s")
    assert await store.load("s") == []
    await store.clear("never-there")


# -- expiry -------------------------------------------------------------------


async def test_idle_sessions_expire() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_ttl=60, clock=clock)
    await store.append("s", turn(1))
    clock.now += 59
    assert len(await store.load("s")) == 2
    clock.now += 60
    assert await store.load("s") == []
    assert "s" not in store


async def test_use_keeps_a_session_alive() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_ttl=60, clock=clock)
    await store.append("busy", turn(1))
    await store.append("idle", turn(1))
    for _ in range(5):
        clock.now += 40
        await store.load("busy")
    assert "busy" in store
    assert "idle" not in store
    assert store.live_sessions() == 1


async def test_expiry_happens_without_touching_the_expired_session() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_ttl=10, clock=clock)
    for i in range(3):
        await store.append(f"old-{i}", turn(i))
    clock.now += 11
    await store.append("new", turn(0))
    assert store.live_sessions() == 1


async def test_beyond_max_sessions_the_longest_idle_is_evicted() -> None:
    clock = Clock()
    store = MemorySessionStore(max_sessions=2, clock=clock)
    await store.append("a", turn(1))
    clock.now += 1
    await store.append("b", turn(1))
    clock.now += 1
    await store.load("a")  # a is now the most recently used
    clock.now += 1
    await store.append("c", turn(1))
    assert ("a" in store, "b" in store, "c" in store) == (True, False, True)


# -- the cap ------------------------------------------------------------------


async def test_history_is_capped_by_dropping_oldest_turns_and_keeping_instructions() -> None:
    store = MemorySessionStore(max_messages=4)
    await store.append("s", [SystemMessage("rules"), *turn(1)])
    await store.append("s", turn(2))
    await store.append("s", turn(3))
    assert texts(await store.load("s")) == [
        "rules",
        "question 2",
        "answer 2",
        "question 3",
        "answer 3",
    ]


async def test_cap_cuts_at_a_user_message_never_inside_a_tool_exchange() -> None:
    store = MemorySessionStore(max_messages=5)
    await store.append("s", tool_turn())
    await store.append("s", turn(2))
    loaded = await store.load("s")
    # Keeping the last five would open with the tool call; the cut moves to the next question.
    assert isinstance(loaded[0], UserMessage)
    assert texts(loaded) == ["question 2", "answer 2"]


async def test_a_turn_longer_than_the_cap_never_opens_with_a_tool_result() -> None:
    store = MemorySessionStore(max_messages=2)
    await store.append("s", tool_turn())
    loaded = await store.load("s")
    assert len(loaded) == 1
    assert isinstance(loaded[0], AssistantMessage)
    assert loaded[0].content == "it is x"


async def test_a_session_never_exceeds_the_cap() -> None:
    store = MemorySessionStore(max_messages=7)
    for i in range(30):
        await store.append("s", tool_turn() if i % 3 else turn(i))
        loaded = await store.load("s")
        assert len(loaded) <= 7
        assert store.used == sum(len(msgspec.json.encode(m)) for m in loaded)


# -- the byte bound -------------------------------------------------------------


def big_turn(n: int) -> list[Message]:
    return [UserMessage(f"question {n} " + "x" * 1000), AssistantMessage(content=f"answer {n}")]


async def test_beyond_max_bytes_the_longest_idle_sessions_are_evicted() -> None:
    clock = Clock()
    store = MemorySessionStore(max_bytes=3500, clock=clock)
    for name in ("a", "b", "c"):
        await store.append(name, big_turn(1))
        clock.now += 1
    await store.load("a")
    await store.append("d", big_turn(1))
    assert ("a" in store, "b" in store, "c" in store, "d" in store) == (True, False, True, True)
    assert store.used <= 3500


async def test_a_session_over_max_bytes_loses_its_oldest_turns() -> None:
    store = MemorySessionStore(max_bytes=2500)
    await store.append("s", [SystemMessage("rules"), *big_turn(1)])
    await store.append("s", big_turn(2))
    await store.append("s", big_turn(3))
    loaded = await store.load("s")
    assert isinstance(loaded[0], SystemMessage)
    assert [m.content for m in loaded[1:] if isinstance(m, AssistantMessage)] == [
        "answer 2",
        "answer 3",
    ]
    assert store.used <= 2500


async def test_bytes_are_given_back_when_sessions_go() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_ttl=10, clock=clock)
    await store.append("a", [SystemMessage("rules"), *turn(1)])
    await store.append("a", [SystemMessage("other rules"), *turn(2)])
    await store.append("b", turn(1))
    assert store.used > 0
    await store.clear("b")
    clock.now += 11
    assert store.live_sessions() == 0
    assert store.used == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_sessions": 0}, {"max_messages": 0}, {"max_bytes": 0}, {"idle_ttl": 0}, {"idle_ttl": -1}],
)
def test_bounds_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemorySessionStore(**kwargs)  # type: ignore[arg-type]
