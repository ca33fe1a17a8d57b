"""Deployment: ``translator serve --workers 1`` against ``--workers 2``, and what a session
turn costs with each store.

Workers: both servers run as ``translator serve`` child processes (echo
backend, default local stores, log level WARNING) and take turns under the
same load generator process as the server comparison, run by run, at each
concurrency; the figures are medians over the runs.

Session turns: one in-process :class:`~translator.core.Translator` with the
echo backend per store (memory, local SQLite, Redis on loopback), answering
the same requests in rotating sessions of up to ``turns_per_session`` turns,
against the same requests naming no session (no store touched): the
difference is the store's load and append. The kinds take turns round by
round; Redis is measured only when ``redis-server`` is installed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from .results import LoadStats, StoreCost
from .serve_process import start_serve, stop
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
) -> list[LoadStats] | str:
    """Medians per worker count and concurrency (``server`` is ``workers N``)."""
    with tempfile.TemporaryDirectory(prefix="translator-bench-") as home:
        env = {"XDG_DATA_HOME": home}
        served = []
        try:
            for n in workers:
                flags = ("--workers", str(n), "--log-level", "WARNING")
                served.append(await asyncio.to_thread(start_serve, *flags, cwd=Path(home), env=env))
        except RuntimeError as exc:
            return f"translator serve did not start: {exc}"
        try:
            urls = {f"workers {n}": s.base + _PATH for n, s in zip(workers, served, strict=True)}
            runs: list[LoadStats] = []
            async with LoadClient() as client:
                for name, url in urls.items():
                    warm = Run(
                        server=name, url=url, body=body, concurrency=max(levels), requests=200
                    )
                    await client.run(warm)
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
                            stats = await client.run(run)
                            stats.server_cpu_us = None  # the work is in the child processes
                            runs.append(stats)
        finally:
            for s in served:
                await asyncio.to_thread(stop, s)
    return [
        median_stats(name, level, [r for r in runs if r.server == name and r.concurrency == level])
        for level in levels
        for name in urls
    ]


async def session_costs(
    *, turns: int, rounds: int, turns_per_session: int = 10
) -> tuple[list[StoreCost], str]:
    """Microseconds per request for each store, and why any store was left out."""
    from translator_plugins.echo import EchoBackend

    from translator.core import Translator
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
            from translator.stores.redis_link import RedisLink
            from translator.stores.redis_sessions import RedisSessionStore

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
