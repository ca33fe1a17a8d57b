"""Deployment: ``translator serve --workers 1`` against ``--workers 2``, and what a session
turn costs with each store.

Workers: both servers run as ``translator serve`` child processes (echo
backend, default local stores, log level WARNING) and take turns, run by
run, at each concurrency, under two load generator processes at once (the
server comparison's, each with half the concurrency: one client process
alone tops out near what one worker answers); the figures are medians over
the runs, requests/s summed over the two clients, p50 and p99 the slower
client's.

Session turns: one in-process :class:`~translator._core.Translator` with the
echo backend per store (memory, local SQLite, Redis on loopback), answering
the same requests in rotating sessions of up to ``turns_per_session`` turns,
against the same requests naming no session (no store touched): the
difference is the store's load and append. The kinds take turns round by
round; Redis is measured only when ``redis-server`` is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from .results import LoadStats, StoreCost
from .serve_process import Served, start_serve, stop
from .server import LoadClient, Run, median_stats

__all__ = ["WORKER_LEVELS", "compare_workers", "session_costs"]

WORKER_LEVELS = (16, 64)
_PATH = "/chat/completions"


async def compare_workers(
    body: bytes,
    *,
    requests: int,
    repeats: int,
    levels: tuple[int, ...] = WORKER_LEVELS,
    workers: tuple[int, ...] = (1, 2),
    clients: int = 2,
) -> list[LoadStats] | str:
    """Medians per worker count and concurrency (``server`` is ``workers N``).

    The load comes from ``clients`` load generator processes at once, each
    with its share of the concurrency, so that one client's event loop does
    not cap what two workers can answer.
    """
    with tempfile.TemporaryDirectory(prefix="translator-bench-") as home:
        served: list[Served] = []
        try:
            try:
                for n in workers:
                    flags = ("--workers", str(n), "--log-level", "WARNING")
                    served.append(
                        await asyncio.to_thread(
                            start_serve, *flags, cwd=Path(home), env={"XDG_DATA_HOME": home}
                        )
                    )
            except RuntimeError as exc:
                return f"translator serve did not start: {exc}"
            urls = {f"workers {n}": s.base + _PATH for n, s in zip(workers, served, strict=True)}
            runs: list[LoadStats] = []
            async with contextlib.AsyncExitStack() as stack:
                load = [await stack.enter_async_context(LoadClient()) for _ in range(clients)]
                for name, url in urls.items():
                    warm = Run(
                        server=name, url=url, body=body, concurrency=max(levels), requests=200
                    )
                    await _together(load, warm)
                for _ in range(repeats):
                    for level in levels:
                        for name, url in urls.items():
                            run = Run(
                                server=name,
                                url=url,
                                body=body,
                                concurrency=level,
                                requests=requests,
                            )
                            runs.append(await _together(load, run))
        finally:
            for s in served:
                await asyncio.to_thread(stop, s)
    return [
        median_stats(name, level, [r for r in runs if r.server == name and r.concurrency == level])
        for level in levels
        for name in urls
    ]


async def _together(load: list[LoadClient], run: Run) -> LoadStats:
    """``run`` shared out between the load generators at once; their sums (rps, requests)
    and their slowest (p50, p99)."""
    n = len(load)
    share = msgspec.structs.replace(
        run, concurrency=max(1, run.concurrency // n), requests=max(1, run.requests // n)
    )
    parts = await asyncio.gather(*(client.run(share) for client in load))
    return LoadStats(
        server=run.server,
        concurrency=run.concurrency,
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        rps=sum(p.rps for p in parts),
        p50_ms=max(p.p50_ms for p in parts),
        p99_ms=max(p.p99_ms for p in parts),
    )


async def session_costs(
    *, turns: int, rounds: int, turns_per_session: int = 10
) -> tuple[list[StoreCost], str]:
    """Microseconds per request for each store, and why any store was left out."""
    from translator_plugins.echo import EchoBackend

    from translator._core import Translator
    from translator.stores import MemorySessionStore, SessionStore, SQLiteSessionStore

    note = ""
    with tempfile.TemporaryDirectory(prefix="translator-bench-") as home:
        stores: dict[str, SessionStore | None] = {
            "no session": None,
            "memory": MemorySessionStore(),
            "local": SQLiteSessionStore(Path(home) / "sessions.sqlite3"),
        }
        redis = link = None
        try:
            from benchmarks.redis_server import RedisServer
            from translator.stores._redis_link import RedisLink
            from translator.stores._redis_sessions import RedisSessionStore

            redis = RedisServer(Path(home))
            redis.start()
            link = RedisLink(redis.url, prefix="bench:")
            stores["redis"] = RedisSessionStore(link)
        except (ImportError, RuntimeError) as exc:
            note = f"redis: {exc}"
        try:
            translators = {
                kind: Translator({"echo": EchoBackend()}, sessions=store or False)
                for kind, store in stores.items()
            }
            samples: dict[str, list[float]] = {kind: [] for kind in stores}
            for number in range(rounds + 1):  # the first round warms up
                for kind, translator in translators.items():
                    bodies = _bodies(
                        turns, turns_per_session, f"{kind}-{number}", kind != "no session"
                    )
                    started = time.perf_counter()
                    for body in bodies:
                        await translator.complete(body, "echo")
                    if number:
                        samples[kind].append((time.perf_counter() - started) * 1e6 / turns)
            for translator in translators.values():
                await translator.aclose()
        finally:
            if link is not None:
                await link.aclose()
            if redis is not None:
                redis.stop()
    base = statistics.median(samples["no session"])
    costs = []
    for kind, values in samples.items():
        us = statistics.median(values)
        costs.append(StoreCost(store=kind, us_per_request=us, x_no_session=us / base))
    return costs, note


def _bodies(turns: int, per_session: int, tag: str, in_session: bool) -> list[bytes]:
    """``turns`` requests: ``per_session`` turns in each of fresh sessions, or in none."""
    sessions = max(1, turns // per_session)
    encode = msgspec.json.encode
    return [
        encode(
            {
                "model": "echo",
                "messages": [{"role": "user", "content": f"question {i} about the invoice"}],
                **({"session_id": f"{tag}-{os.getpid()}-{i % sessions}"} if in_session else {}),
            }
        )
        for i in range(turns)
    ]
