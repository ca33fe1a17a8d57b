"""Running the app on a socket: :func:`serving` for code and tests, :func:`run` for the CLI
(both stop on a signal through :func:`until_stopped`, as each worker does).

Both run aiohttp with handler cancellation on, so a client that disconnects
cancels its request's backend call at once, and shut down gracefully: in-flight
requests get ``shutdown_timeout`` seconds to finish, then the app's cleanup
closes the backends and the client session.

Each connection follows the ``[server]`` limits on header bytes, slow
clients, idle time and open connections (see :mod:`.connections`), and what
aiohttp's parser refuses is answered with an OpenAI error body. An
application mounted in a runner of your own gets aiohttp's defaults and its
plain-text answers instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web

from ..config import ServerSettings
from ._app import SETTINGS
from ._connections import ConnectionServer
from ._health import READINESS
from ._logs import log_event

__all__ = ["base_url", "drain", "run", "serve_socket", "serving", "until_stopped"]

log = logging.getLogger("translator.server")

T = TypeVar("T")


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
    site = functools.partial(web.TCPSite, host=host, port=port)
    async with _served(app, site, shutdown_timeout) as runner:
        yield base_url(host, runner.addresses[0][1])


@asynccontextmanager
async def serve_socket(
    app: web.Application, sock: socket.socket, *, shutdown_timeout: float = 30.0
) -> AsyncIterator[None]:
    """Serve ``app`` on a listening socket (shared by the workers of one port)."""
    async with _served(app, functools.partial(web.SockSite, sock=sock), shutdown_timeout):
        yield


@asynccontextmanager
async def _served(
    app: web.Application,
    site: Callable[[web.AppRunner], web.BaseSite],
    shutdown_timeout: float,
) -> AsyncIterator[web.AppRunner]:
    """Serve ``app`` on ``site`` while the block runs; then ``/ready`` turns to
    ``draining`` and what is in flight gets ``shutdown_timeout`` seconds."""
    runner = await _start_runner(app, shutdown_timeout)
    try:
        await site(runner).start()
        yield runner
    finally:
        readiness = app.get(READINESS)
        if readiness is not None:
            readiness.drain()
        await runner.cleanup()


async def _start_runner(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    settings = app.get(SETTINGS) or ServerSettings()
    runner = _Runner(
        app,
        settings,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        max_line_size=settings.max_line_size,
        max_field_size=settings.max_field_size,
        keepalive_timeout=settings.keepalive_timeout,
    )
    await runner.setup()
    return runner


async def drain(app: web.Application) -> None:
    """Turn ``/ready`` to ``draining``, then wait ``drain_seconds`` still serving."""
    readiness = app.get(READINESS)
    if readiness is None:
        return
    readiness.drain()
    settings = app.get(SETTINGS)
    seconds = settings.observability.drain_seconds if settings is not None else 0.0
    if seconds:
        log_event(log, logging.INFO, "draining", seconds=seconds)
        await asyncio.sleep(seconds)


def run(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    announce: Callable[[str], None] | None = None,
    shutdown_timeout: float = 30.0,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``announce`` gets the root URL once listening.

    On the signal, ``/ready`` turns to ``draining`` for ``drain_seconds`` while
    the server still answers; then it stops listening and finishes what is in flight.
    """

    def serve(app: web.Application) -> AbstractAsyncContextManager[str]:
        return serving(app, host, port, shutdown_timeout=shutdown_timeout)

    asyncio.run(until_stopped(lambda: app, serve, announce))


async def until_stopped(
    make_app: Callable[[], web.Application],
    serve: Callable[[web.Application], AbstractAsyncContextManager[T]],
    started: Callable[[T], None] | None = None,
) -> None:
    """Serve the app ``make_app`` builds (in the running loop) with ``serve``, telling
    ``started`` what it yields, until SIGINT or SIGTERM; then :func:`drain` it and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = make_app()
    async with serve(app) as served:
        if started is not None:
            started(served)
        await stop.wait()
        await drain(app)


class _Runner(web.AppRunner):
    """An app runner whose connections follow :class:`~.connections.Connection`'s rules."""

    def __init__(self, app: web.Application, settings: ServerSettings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.settings = settings

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = ConnectionServer  # the same server, making Connection handlers
        assert isinstance(server, ConnectionServer)
        server.settings = self.settings
        return server
