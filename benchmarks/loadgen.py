"""The load generator: a separate process that drives servers over loopback.

``python -m benchmarks.loadgen SPEC`` reads a JSON :class:`LoadSpec` from the
file SPEC, runs every load it names (servers alternating, so that the noise of
the machine falls on each alike) and prints a JSON list of
:class:`~benchmarks.results.LoadStats` on stdout.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import msgspec

from .results import LoadStats

__all__ = ["LoadSpec", "Target", "load", "main"]


class Target(msgspec.Struct):
    """A server to drive: its name in the results and the URL to POST to."""

    name: str
    url: str


class LoadSpec(msgspec.Struct, kw_only=True):
    """What to run: each target at each concurrency, ``repeats`` times."""

    targets: list[Target]
    body: bytes
    concurrency: list[int]
    requests: int
    warmup: int
    repeats: int


async def load(
    session: aiohttp.ClientSession, target: Target, body: bytes, concurrency: int, requests: int
) -> LoadStats:
    """POST ``body`` ``requests`` times, ``concurrency`` at a time; time each one."""
    latencies: list[float] = []
    errors = 0
    left = requests
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            start = time.perf_counter()
            try:
                async with session.post(target.url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - start)
            if not ok:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return LoadStats(
        server=target.name,
        concurrency=concurrency,
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


async def _run(spec: LoadSpec) -> list[LoadStats]:
    results: list[LoadStats] = []
    top = max(spec.concurrency)
    connector = aiohttp.TCPConnector(limit=top, limit_per_host=top)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in spec.targets:
            await load(session, target, spec.body, top, spec.warmup)
        for _ in range(spec.repeats):
            for concurrency in spec.concurrency:
                for target in spec.targets:
                    await load(session, target, spec.body, concurrency, spec.warmup // 4)
                    results.append(
                        await load(session, target, spec.body, concurrency, spec.requests)
                    )
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.loadgen SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        spec = msgspec.json.decode(f.read(), type=LoadSpec)
    results = asyncio.run(_run(spec))
    sys.stdout.buffer.write(msgspec.json.encode(results) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
