"""One connection's policy, below the application: bounded memory, every wait timed.

:class:`Connection` is aiohttp's connection handler with these rules, each a
``[server]`` key:

- A request head (request line and headers) is at most ``max_header_bytes``
  in all; past it, a 431. Header bytes are counted as they arrive, before any
  API key is checked, so that a connection that never finishes its head holds
  at most that much.
- A head must be complete ``header_timeout`` seconds after its first byte,
  else a 408. A connection that sends nothing is closed after
  ``keepalive_timeout`` seconds, as is an idle kept-alive one.
- A body may pause at most ``body_timeout`` seconds, and once that long has
  passed it must have kept ``min_body_rate`` bytes a second on average; a
  slower one is a 408 (the handler reading it gets the error).
- At most ``max_connections`` are open; one more is answered 503 with
  ``Retry-After`` and closed.

What aiohttp's parser refuses (a header over ``max_field_size``, a request
line over ``max_line_size``, bytes that are no HTTP) is answered with an
OpenAI error body too, logged as one WARNING line without a traceback. Every
such answer closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, ContentEncodingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from ..config import ServerSettings
from ..errors import InvalidRequestError, TranslatorError
from .body import unsupported_encoding
from .logs import log_event
from .middleware import REQUEST_ID, error_response, new_request_id

__all__ = ["Connection", "ConnectionServer", "SlowClientError"]

log = logging.getLogger("translator.server")


class SlowClientError(InvalidRequestError, TimeoutError):
    """The client was too slow sending its request (408); the connection is closed."""

    status = 408
    default_code = "request_timeout"


class HeadTooLargeError(InvalidRequestError):
    status = 431
    default_code = "header_too_large"


class ConnectionServer(web.Server):
    """aiohttp's server, making :class:`Connection` handlers under ``settings``."""

    settings: ServerSettings

    def __call__(self) -> RequestHandler:
        return Connection(self, self.settings, loop=self._loop, **self._kwargs)

    @property
    def full(self) -> bool:
        return len(self._connections) >= self.settings.max_connections


class Connection(RequestHandler):
    """One client connection (see the module docstring for its rules)."""

    __slots__ = (
        "_body",
        "_body_bytes",
        "_body_last",
        "_body_started",
        "_body_timer",
        "_head_bytes",
        "_head_timer",
        "_idle_timer",
        "_limits",
        "_refused",
        "_settings",
    )

    def __init__(
        self,
        manager: ConnectionServer,
        settings: ServerSettings,
        *,
        max_line_size: int = 8190,
        max_field_size: int = 8190,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            manager, max_line_size=max_line_size, max_field_size=max_field_size, **kwargs
        )
        self._settings = settings
        self._limits = (max_line_size, max_field_size)
        """Kept here: aiohttp before 3.12 does not keep them on the handler."""
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        """The body being received, while it is."""
        self._body_started = self._body_last = 0.0
        self._body_bytes = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        """Runs from the connection's opening until its first byte."""
        self._refused = False
        """Set once the request being read is refused: nothing more is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if isinstance(manager, ConnectionServer) and manager.full:
            self._manager = None  # never counted, so connection_lost has nothing to undo
            error = TranslatorError(
                "The server has too many open connections; retry shortly.",
                code="too_many_connections",
                status=503,
            )
            assert isinstance(transport, asyncio.Transport)
            transport.write(_raw_answer(error, {"Retry-After": "1", "Connection": "close"}))
            transport.close()
            log_event(log, logging.WARNING, "connection_refused", reason="max_connections")
            return
        super().connection_made(transport)
        # Not left to aiohttp: before 3.14.5 its keep-alive timer starts only
        # after a first request, so a connection that never sends stays open.
        self._idle_timer = self._loop.call_later(self._settings.keepalive_timeout, self._idle_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._refused:
            return
        count = self._request_count
        body = self._body
        if body is not None:
            self._body_bytes += len(data)
            self._body_last = self._loop.time()
        super().data_received(data)
        if self._request_count != count:
            self._message_arrived()
        elif body is None:
            self._head_received(len(data))
        elif body.is_eof():  # the rest of this piece, if any, is not counted: at most one read
            self._body = None

    def _head_received(self, size: int) -> None:
        """``size`` more bytes of a head not yet complete."""
        self._head_bytes += size
        limit = self._settings.max_header_bytes
        if self._head_bytes > limit:
            self._refuse(
                HeadTooLargeError(
                    f"The request head (request line and headers) is over the {limit} bytes "
                    "this server accepts.",
                )
            )
        elif self._head_timer is None and size:
            when = self._loop.time() + self._settings.header_timeout
            self._head_timer = self._loop.call_at(when, self._head_late)

    def _message_arrived(self) -> None:
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if not self._messages:
            return
        message, payload = self._messages[-1]
        if isinstance(message, _ErrInfo):  # the parser refused the request: read no more
            self._refused = True
            return
        if payload is EMPTY_PAYLOAD or payload.is_eof():
            self._body = None
            return
        self._body = payload
        self._body_started = self._body_last = self._loop.time()
        self._body_bytes = 0
        if self._body_timer is None:
            when = self._body_started + self._settings.body_timeout
            self._body_timer = self._loop.call_at(when, self._body_check)

    def _head_late(self) -> None:
        self._head_timer = None
        seconds = self._settings.header_timeout
        self._refuse(
            SlowClientError(f"The request head was not received within {seconds:g} seconds.")
        )

    def _body_check(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof():
            self._body = None
            return
        settings = self._settings
        pause = self._body_last + settings.body_timeout
        allowed = settings.body_timeout + self._body_bytes / settings.min_body_rate
        rate = self._body_started + allowed
        now = self._loop.time()
        if now < min(pause, rate):
            self._body_timer = self._loop.call_at(min(pause, rate), self._body_check)
            return
        self._body = None
        self._refused = True
        why = (
            f"paused for over {settings.body_timeout:g} seconds"
            if now >= pause
            else f"arrived slower than {settings.min_body_rate} bytes a second"
        )
        body.set_exception(SlowClientError(f"The request body {why}."))
        if self._waiter is not None:  # no request is being handled
            self.force_close()
        else:
            self.close()  # once the handler has answered
        log_event(log, logging.INFO, "slow_client", remote=self._peer(), part="body")

    def _refuse(self, error: TranslatorError) -> None:
        """Answer ``error`` in place of the request being read, then close."""
        self._refused = True
        self._cancel_timers()
        self._messages.append((_ErrInfo(status=error.status, exc=error, message=""), EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _idle_late(self) -> None:
        """Nothing was sent since the connection opened: close it, as an idle one."""
        self._idle_timer = None
        log_event(log, logging.DEBUG, "idle_connection_closed", remote=self._peer())
        self.force_close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._idle_timer = None

    def _peer(self) -> str | None:
        transport = self.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if peer else None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        error = _low_level_error(status, exc, *self._limits)
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
                status=error.status,
                error=type(exc).__name__ if exc is not None else None,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; no error body can follow it")
        response = error_response(error, {REQUEST_ID: rid})
        response.force_close()
        return response


def _low_level_error(
    status: int, exc: BaseException | None, line: int, field: int
) -> TranslatorError:
    if isinstance(exc, TranslatorError):
        return exc
    if status >= 500:
        return TranslatorError("The server had an error while reading your request.", status=status)
    if isinstance(exc, ContentEncodingError):  # one aiohttp could decode with a package more
        return unsupported_encoding(_encoding_named(str(exc)))
    if isinstance(exc, LineTooLong):
        # Not the parser's message: it quotes the header, which may hold a key.
        return HeadTooLargeError(
            f"The request line or a header is too long: this server accepts request lines of "
            f"at most {line} bytes and header names and values of at most {field}.",
        )
    # Not the parser's message either: its wording is aiohttp's, and changes.
    return InvalidRequestError(
        "The request is not valid HTTP/1.1: its request line or headers could not be read.",
        code="bad_http_request",
        status=status,
    )


def _encoding_named(message: str) -> str:
    """The encoding aiohttp's message names (``... brotli (br) ...``): never its advice."""
    for name in ("br", "zstd"):
        if f"({name})" in message:
            return name
    return "unknown"


def _raw_answer(error: TranslatorError, headers: dict[str, str]) -> bytes:
    """``error`` as a whole HTTP/1.1 response, for a connection no request was read from."""
    body = error.to_json()
    lines = [
        f"HTTP/1.1 {error.status} Error",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
