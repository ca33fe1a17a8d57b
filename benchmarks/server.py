"""Server overhead: the real server with the echo backend against a bare handler.

Both servers run in this process on loopback; the load comes from a separate
client process (:mod:`benchmarks.loadgen`), so client and servers do not share
an event loop. The bare aiohttp handler reads the request and answers with the
very bytes the real server answered, so the difference is the translator's
work: routing, decoding, the matrix, the echo answer, encoding, middleware.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import msgspec
from aiohttp import web

from .loadgen import LoadSpec, Target
from .results import LoadStats, ServerComparison

__all__ = ["LEVELS", "compare_servers", "real_app"]

LEVELS = (1, 16, 64)
_PATH = "/v1/chat/completions"


def real_app() -> web.Application | str:
    """The translator's server with its defaults (every model through echo), or why not."""
    try:
        from translator.server import create_app
    except ImportError as exc:
        return f"the server is not importable: {exc}"
    return create_app()


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
    """The real server and the bare one under the same load; medians over ``repeats``."""
    app = real_app()
    if isinstance(app, str):
        return app
    async with _serving(app) as real_url:
        async with aiohttp.ClientSession() as session:
            headers = {"Content-Type": "application/json"}
            async with session.post(real_url, data=body, headers=headers) as response:
                reply = await response.read()
                if response.status != 200:
                    return f"the server answered {response.status}: {reply[:200]!r}"
        async with _serving(bare_app(reply)) as bare_url:
            spec = LoadSpec(
                targets=[Target("translator", real_url), Target("bare", bare_url)],
                body=body,
                concurrency=list(levels),
                requests=requests,
                warmup=max(64, requests // 4),
                repeats=repeats,
            )
            runs = await _client(spec)
    if isinstance(runs, str):
        return runs
    return [_compare(level, [r for r in runs if r.concurrency == level]) for level in levels]


async def _client(spec: LoadSpec) -> list[LoadStats] | str:
    """Run the load generator in its own process and read its results."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(msgspec.json.encode(spec))
        f.flush()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            f.name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    if process.returncode != 0:
        return f"the load generator failed: {err.decode(errors='replace')[-500:]}"
    return msgspec.json.decode(out, type=list[LoadStats])


def _median_stats(name: str, level: int, runs: list[LoadStats]) -> LoadStats:
    return LoadStats(
        server=name,
        concurrency=level,
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
    )


def _compare(level: int, runs: list[LoadStats]) -> ServerComparison:
    real = [r for r in runs if r.server == "translator"]
    bare = [r for r in runs if r.server == "bare"]
    return ServerComparison(
        concurrency=level,
        translator=_median_stats("translator", level, real),
        bare=_median_stats("bare", level, bare),
        runs=runs,
    )
