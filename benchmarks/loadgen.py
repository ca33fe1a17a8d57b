"""The load generator: a separate process that drives a server over loopback.

``python -m benchmarks.loadgen`` reads one JSON :class:`Run` per line on stdin,
drives the server it names, and answers each with one JSON
:class:`~benchmarks.results.LoadStats` line on stdout; it ends at end of input.
Working one run at a time lets the server's process measure its own CPU time
for exactly that run.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import msgspec

from .results import LoadStats

__all__ = ["Run", "load", "main"]


class Run(msgspec.Struct, kw_only=True):
    """One load: POST ``body`` to ``url`` ``requests`` times, ``concurrency`` at a time."""

    server: str
    url: str
    body: bytes
    concurrency: int
    requests: int


async def load(session: aiohttp.ClientSession, run: Run) -> LoadStats:
    """Drive the server as ``run`` says; time each request."""
    latencies: list[float] = []
    errors = 0
    left = run.requests
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            start = time.perf_counter()
            try:
                async with session.post(run.url, data=run.body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - start)
            if not ok:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(run.concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return LoadStats(
        server=run.server,
        concurrency=run.concurrency,
        requests=len(latencies),
        errors=errors,
        rps=len(latencies) / wall,
        p50_ms=_quantile(latencies, 0.50) * 1e3,
        p99_ms=_quantile(latencies, 0.99) * 1e3,
    )


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, by nearest rank."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


async def _serve() -> None:
    decoder = msgspec.json.Decoder(Run)
    out = sys.stdout.buffer
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        for line in sys.stdin.buffer:
            stats = await load(session, decoder.decode(line))
            out.write(msgspec.json.encode(stats) + b"\n")
            out.flush()


def main() -> int:
    asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
