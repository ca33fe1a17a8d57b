"""The deployment benchmarks: workers under load, and a session turn's cost per store."""

from __future__ import annotations

from benchmarks.corpus import build_payloads
from benchmarks.deploy import compare_workers, session_costs
from benchmarks.report import render_stores, render_workers


async def test_one_and_two_workers_are_loaded_alike_and_answer_every_request() -> None:
    found = await compare_workers(build_payloads()[0].body, requests=20, repeats=1, levels=(4,))
    assert not isinstance(found, str), found
    assert [(w.server, w.concurrency) for w in found] == [("workers 1", 4), ("workers 2", 4)]
    for stats in found:
        assert (stats.requests, stats.errors) == (20, 0)
        assert stats.rps > 0
        assert 0 < stats.p50_ms <= stats.p99_ms
    table = render_workers(found)
    assert "1.00x" in table  # the one-worker row is the baseline


async def test_every_store_is_measured_against_no_session() -> None:
    costs, note = await session_costs(turns=6, rounds=1, turns_per_session=3)
    assert note == ""  # redis-server is installed here: every store is measured
    assert [c.store for c in costs] == ["no session", "memory", "local", "redis"]
    assert costs[0].x_no_session == 1.0
    assert all(c.us_per_request > 0 for c in costs)
    table = render_stores(costs)
    for kind in ("memory", "local", "redis"):
        assert kind in table
