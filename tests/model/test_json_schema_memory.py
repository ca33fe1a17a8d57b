"""Compiled schemas are kept within a memory budget, and a schema too large to compile
quickly is refused: a client sending ever new schemas cannot grow the server or stall it.

``CostBoundedCache`` on its own (eviction order, cost accounting, an entry
larger than the budget), then the schema cache built on it, with the hostile
schemas it is for: 64 patterns each near RE2's memory cap.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import pytest

from translator import _json_schema as json_schema
from translator._json_schema import MEMORY, SchemaError, schema_check
from translator._json_schema.cache import CostBoundedCache
from translator._json_schema.patterns import PATTERN_MEMORY, PATTERNS
from translator._json_schema.size import VALUES


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = CostBoundedCache[str, int](30)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value, 10)
    assert cache.get("a") == 1  # a is now the most recently used: b is the oldest
    cache.put("d", 4, 10)
    assert "b" not in cache
    assert [cache.get(k) for k in "acd"] == [1, 3, 4]
    cache.put("e", 5, 20)  # needs two places: the oldest two go (a, then c)
    assert "a" not in cache
    assert "c" not in cache
    assert [cache.get(k) for k in "de"] == [4, 5]
    assert cache.get("a") is None


def test_costs_are_added_and_given_back() -> None:
    cache = CostBoundedCache[str, str](100)
    cache.put("a", "x", 40)
    cache.put("b", "y", 35)
    assert cache.cost == 75
    cache.put("a", "z", 10)  # the same key again: its old cost is given back
    assert cache.cost == 45
    assert cache.get("a") == "z"
    assert len(cache) == 2
    cache.pop("b")
    assert cache.cost == 10
    cache.put("c", "w", 90)  # exactly the budget: nothing more to evict
    assert cache.cost == 100
    assert len(cache) == 2
    cache.clear()
    assert (cache.cost, len(cache)) == (0, 0)


def test_threads_sharing_the_cache_keep_its_count_and_never_fail() -> None:
    cache: CostBoundedCache[int, str] = CostBoundedCache(budget=40)
    failures: list[BaseException] = []

    def churn(offset: int) -> None:
        try:
            for i in range(3_000):
                key = (i + offset) % 25
                if cache.get(key) is None:
                    cache.put(key, f"v{key}", cost=1 + key % 7)
                if i % 11 == 0:
                    cache.pop((key + 3) % 25)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can
    try:
        threads = [threading.Thread(target=churn, args=(n * 7,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert cache.cost == sum(1 + key % 7 for key in range(25) if key in cache) <= 40


def test_an_entry_costing_more_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    cache = CostBoundedCache[str, int](50)
    cache.put("a", 1, 20)
    cache.put("b", 2, 20)
    cache.put("huge", 3, 51)
    assert "huge" not in cache
    assert [cache.get(k) for k in "ab"] == [1, 2]
    assert cache.cost == 40


def _hostile(n: int) -> bytes:
    """A distinct schema of as many patterns as allowed, each near RE2's memory cap."""
    return json.dumps(
        {
            "type": "object",
            "properties": {
                f"p{i}": {"type": "string", "pattern": f"^[a-z]{{0,1000}}{i}x{n}$"}
                for i in range(PATTERNS)
            },
        }
    ).encode()


def test_many_hostile_schemas_are_kept_within_the_memory_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = CostBoundedCache[bytes, Any](MEMORY)
    monkeypatch.setattr(json_schema, "_cache", cache)
    compiled: list[Any] = []
    real = json_schema.compile_schema

    def counting(definition: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(definition)
        return real(definition, *args, **kwargs)

    monkeypatch.setattr(json_schema, "compile_schema", counting)
    each = PATTERNS * PATTERN_MEMORY  # what RE2 may hold for one of them
    fits = MEMORY // each
    for n in range(fits + 2):
        check = schema_check(_hostile(n))
        assert check({"p0": f"abc0x{n}"}) is None
        assert check({"p0": "abc0x-1"}) is not None
        assert cache.cost <= MEMORY
    assert 0 < len(cache) < fits + 2
    assert len(compiled) == fits + 2
    schema_check(_hostile(fits + 1))  # the most recent is kept
    assert len(compiled) == fits + 2
    check = schema_check(_hostile(0))  # the first was evicted: compiled again, and right
    assert len(compiled) == fits + 3
    assert check({"p1": "z1x0"}) is None


def test_refusals_are_kept_too_at_their_size() -> None:
    text = b'{"type": "object", "properties": 5, "title": "refused and kept"}'
    with pytest.raises(SchemaError) as first:
        schema_check(text)
    assert text in json_schema._cache
    with pytest.raises(SchemaError) as again:
        schema_check(text)
    assert str(again.value) == str(first.value)


def _enum(values: int) -> bytes:
    """A schema of exactly ``values`` JSON values: the object, the array, its items."""
    return json.dumps({"enum": list(range(values - 2))}).encode()


def test_a_schema_of_more_json_values_than_allowed_is_refused_before_it_is_compiled() -> None:
    check = schema_check(_enum(VALUES))
    assert check(VALUES - 3) is None
    assert check(VALUES - 2) is not None
    with pytest.raises(SchemaError, match=f"more than {VALUES:,} JSON values"):
        schema_check(_enum(VALUES + 1))
    properties = {f"p{i}": {"type": "string"} for i in range(VALUES)}
    with pytest.raises(SchemaError, match="JSON values"):
        schema_check(json.dumps({"properties": properties}).encode())


def test_a_huge_schema_is_refused_without_being_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 properties took seconds (and hundreds of MB) to compile, in the event loop."""
    compiled: list[Any] = []
    monkeypatch.setattr(json_schema, "compile_schema", lambda *args: compiled.append(args))
    properties = {f"p{i}": {"type": "string", "description": "d" * 20} for i in range(20_000)}
    with pytest.raises(SchemaError, match="JSON values"):
        schema_check(json.dumps({"type": "object", "properties": properties}).encode())
    assert compiled == []
