"""Running the app on a socket: :func:`serving` for code and tests, :func:`run` for the CLI.

Both run aiohttp with handler cancellation on, so a client that disconnects
cancels its request's backend call at once, and shut down gracefully: in-flight
requests get ``shutdown_timeout`` seconds to finish, then the app's cleanup
closes the backends and the client session.

A request aiohttp's HTTP parser refuses before the app sees it (a header over
``server.max_field_size``, a request line over ``server.max_line_size``, bytes
that are no HTTP) is answered here with an OpenAI error body too, and logged
as one WARNING line without a traceback. An application mounted in a runner of
your own gets aiohttp's plain-text answer to those instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..config import ServerSettings
from ..errors import InvalidRequestError, TranslatorError
from .app import SETTINGS
from .logs import log_event
from .middleware import REQUEST_ID, error_response, new_request_id

__all__ = ["base_url", "run", "serving"]

log = logging.getLogger("translator.server")


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
    settings = app.get(SETTINGS) or ServerSettings()
    runner = _Runner(
        app,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        max_line_size=settings.max_line_size,
        max_field_size=settings.max_field_size,
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


# -- errors below the application ------------------------------------------------


class _Protocol(RequestHandler):
    """aiohttp's connection handler, answering what it refuses with an OpenAI error body."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        error = _low_level_error(status, exc, message, self.max_line_size, self.max_field_size)
        rid = new_request_id()
        if status >= 500:
            self.log_exception("error handling request request_id=%s", rid, exc_info=exc)
        else:
            # Bytes that are no HTTP at all (scanners, TLS on this port) are noise: DEBUG.
            level = logging.DEBUG if isinstance(exc, BadStatusLine) else logging.WARNING
            log_event(
                log,
                level,
                "bad_http_request",
                request_id=rid,
                remote=request.remote,
                status=status,
                error=type(exc).__name__ if exc is not None else None,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; no error body can follow it")
        response = error_response(error, {REQUEST_ID: rid})
        response.force_close()
        return response


def _low_level_error(
    status: int, exc: BaseException | None, message: str | None, line: int, field: int
) -> TranslatorError:
    if status >= 500:
        return TranslatorError("The server had an error while reading your request.", status=status)
    if isinstance(exc, LineTooLong):
        # Not the parser's message: it quotes the header, which may hold a key.
        return InvalidRequestError(
            f"The request line or a header is too long: this server accepts request lines of "
            f"at most {line} bytes and header names and values of at most {field}.",
            code="header_too_large",
            status=status,
        )
    return InvalidRequestError(
        f"The request is not valid HTTP: {message or 'malformed'}",
        code="bad_http_request",
        status=status,
    )


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server, making _Protocol connections
        return server
