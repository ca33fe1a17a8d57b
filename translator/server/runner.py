"""Running the app on a socket: :func:`serving` for code and tests, :func:`run` for the CLI.

Both run aiohttp with handler cancellation on, so a client that disconnects
cancels its request's backend call at once, and shut down gracefully: in-flight
requests get ``shutdown_timeout`` seconds to finish, then the app's cleanup
closes the backends and the client session.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

__all__ = ["base_url", "run", "serving"]


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@asynccontextmanager
async def serving(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = 30.0,
) -> AsyncIterator[str]:
    """Serve ``app`` while the block runs; yields the root URL (port 0 picks a free port)."""
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=shutdown_timeout, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        yield base_url(host, bound[1])
    finally:
        await runner.cleanup()


def run(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    announce: Callable[[str], None] | None = None,
    shutdown_timeout: float = 30.0,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``announce`` gets the root URL once listening."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serving(app, host, port, shutdown_timeout=shutdown_timeout) as url:
            if announce is not None:
                announce(url)
            await stop.wait()

    asyncio.run(main())
