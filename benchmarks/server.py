"""Server overhead: the real server with the echo backend against a bare handler,
and against itself with metrics off (what the metrics cost).

Both servers run in this process on loopback; the load comes from a separate
client process (:mod:`benchmarks.loadgen`), so client and servers do not share
an event loop, and the CPU time this process spends on each run is the
server's own work for it. The bare aiohttp handler reads the request and answers with the
very bytes the real server answered, so the difference is the translator's
work: routing, decoding, the matrix, the echo answer, encoding, middleware.

A third server, in the same turns, routes every model to two echo backends
with the ``fallback`` strategy (neither fails): against the first, it is what
a route of several backends costs (each candidate's matrix applied to its own
copy of the request, health bookkeeping) when no fallback happens.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import msgspec
from aiohttp import web

from .loadgen import Run
from .results import LoadStats, ServerComparison

__all__ = [
    "LEVELS",
    "LoadClient",
    "Run",
    "compare_servers",
    "fallback_app",
    "median_stats",
    "real_app",
]

LEVELS = (1, 16, 64)
_PATH = "/v1/chat/completions"


def real_app(*, metrics: bool = True) -> web.Application | str:
    """The translator's server with its defaults (every model through echo), or why not;
    ``metrics=False`` turns its Prometheus metrics off."""
    try:
        from translator.config import Config
        from translator.server import create_app
    except ImportError as exc:
        return f"the server is not importable: {exc}"
    config = Config.default()
    config.server.observability.metrics = metrics
    return create_app(config)


def fallback_app() -> web.Application | str:
    """The server with every model routed to two echo backends, fallback first to second."""
    try:
        from translator._backend import BackendSettings
        from translator._routing import Route, Strategy
        from translator.config import Config
        from translator.server import create_app
    except ImportError as exc:
        return f"the server is not importable: {exc}"
    echo = BackendSettings(plugin="echo")
    route = Route("*", backends=["echo", "echo-2"], strategy=Strategy.FALLBACK)
    return create_app(Config(backends={"echo": echo, "echo-2": echo}, routes=[route]))


def bare_app(reply: bytes) -> web.Application:
    """A handler that reads the request and returns ``reply``: nothing else."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post(_PATH, handler)
    return app


@asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}{_PATH}"
    finally:
        await runner.cleanup()


async def compare_servers(
    body: bytes,
    *,
    requests: int,
    repeats: int,
    levels: tuple[int, ...] = LEVELS,
) -> list[ServerComparison] | str:
    """The real server and the bare one under the same load; medians over ``repeats``.

    The two take turns run by run, so that the noise of a busy machine falls
    on both alike.
    """
    app = real_app()
    if isinstance(app, str):
        return app
    routed = fallback_app()
    if isinstance(routed, str):
        return routed
    unmetered = real_app(metrics=False)
    assert not isinstance(unmetered, str)
    async with (
        _serving(app) as real_url,
        _serving(routed) as fallback_url,
        _serving(unmetered) as unmetered_url,
    ):
        async with aiohttp.ClientSession() as session:
            headers = {"Content-Type": "application/json"}
            async with session.post(real_url, data=body, headers=headers) as response:
                reply = await response.read()
                if response.status != 200:
                    return f"the server answered {response.status}: {reply[:200]!r}"
        async with _serving(bare_app(reply)) as bare_url:
            urls = {
                "translator": real_url,
                "fallback": fallback_url,
                "unmetered": unmetered_url,
                "bare": bare_url,
            }
            try:
                runs = await _drive(urls, body, requests, repeats, levels)
            except _LoadError as exc:
                return str(exc)
    return [_compare(level, [r for r in runs if r.concurrency == level]) for level in levels]


async def _drive(
    urls: dict[str, str], body: bytes, requests: int, repeats: int, levels: tuple[int, ...]
) -> list[LoadStats]:
    """Warm both servers up, then load them in turns: each level, ``repeats`` times."""
    runs: list[LoadStats] = []
    async with LoadClient() as client:
        for server, url in urls.items():
            warmup = max(64, requests // 4)
            await client.run(
                Run(server=server, url=url, body=body, concurrency=max(levels), requests=warmup)
            )
        for _ in range(repeats):
            for level in levels:
                for server, url in urls.items():
                    run = Run(
                        server=server, url=url, body=body, concurrency=level, requests=requests
                    )
                    runs.append(await client.run(run))
    return runs


class _LoadError(Exception):
    """The load generator stopped answering."""


class LoadClient:
    """The load generator process, driven one run at a time."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(LoadStats)

    async def __aenter__(self) -> LoadClient:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def run(self, run: Run) -> LoadStats:
        """One run; the server process's CPU time for it is measured around it."""
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        cpu = time.process_time()
        process.stdin.write(self._encoder.encode(run) + b"\n")
        await process.stdin.drain()
        line = await process.stdout.readline()
        cpu = time.process_time() - cpu
        if not line:
            assert process.stderr is not None
            err = await process.stderr.read()
            raise _LoadError(f"the load generator failed: {err.decode(errors='replace')[-500:]}")
        stats = self._decoder.decode(line)
        stats.server_cpu_us = cpu * 1e6 / max(stats.requests, 1)
        return stats

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        process.stdin.close()
        await process.wait()


def median_stats(name: str, level: int, runs: list[LoadStats]) -> LoadStats:
    cpu = [r.server_cpu_us for r in runs if r.server_cpu_us is not None]
    return LoadStats(
        server=name,
        concurrency=level,
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        server_cpu_us=statistics.median(cpu) if cpu else None,
    )


def _compare(level: int, runs: list[LoadStats]) -> ServerComparison:
    real = [r for r in runs if r.server == "translator"]
    routed = [r for r in runs if r.server == "fallback"]
    bare = [r for r in runs if r.server == "bare"]
    unmetered = [r for r in runs if r.server == "unmetered"]
    return ServerComparison(
        concurrency=level,
        translator=median_stats("translator", level, real),
        bare=median_stats("bare", level, bare),
        fallback=median_stats("fallback", level, routed) if routed else None,
        unmetered=median_stats("unmetered", level, unmetered) if unmetered else None,
        runs=runs,
    )
