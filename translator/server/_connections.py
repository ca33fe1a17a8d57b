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

A request line (method, path and query) over ``max_line_size`` bytes is a
414. What aiohttp's parser refuses (a header over ``max_field_size``, bytes
that are no HTTP) is answered with an OpenAI error body too, logged as one
WARNING line without a traceback. Every such answer closes the connection,
and nothing sent after the refused request is read: a request pipelined
behind it is never answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, ContentEncodingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from ..config import ServerSettings
from ..errors import InvalidRequestError, TranslatorError
from ._body import unsupported_encoding
from ._logs import log_event
from ._middleware import REQUEST_ID, error_response, new_request_id

__all__ = ["Connection", "ConnectionServer", "SlowClientError"]

log = logging.getLogger("translator.server")


class SlowClientError(InvalidRequestError, TimeoutError):
    """The client was too slow sending its request (408); the connection is closed."""

    status = 408
    default_code = "request_timeout"


class HeadTooLargeError(InvalidRequestError):
    status = 431
    default_code = "header_too_large"


class UriTooLongError(InvalidRequestError):
    status = 414
    default_code = "uri_too_long"


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
        "_line",
        "_line_cap",
        "_line_limit",
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
        # The parser's own line limit is set apart from the field limit, so that its
        # LineTooLong tells a request line from a header by the limit it names; a
        # request line between the two is refused once parsed (_line_too_long).
        parser_line = max(max_line_size, max_field_size) + 1
        super().__init__(
            manager, max_line_size=parser_line, max_field_size=max_field_size, **kwargs
        )
        self._settings = settings
        self._line_limit = max_line_size
        self._line_cap = parser_line - 1
        """Unfinished past this, a line is too long whether it is the request line or a header."""
        self._line = 0
        """Bytes of the request line so far, while it is unfinished; -1 once it ended."""
        self._limits = (parser_line, max_field_size)
        """The parser's; kept here: aiohttp before 3.12 does not keep them on the handler."""
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
            self._message_arrived(self._request_count - count)
        elif body is None:
            self._head_received(data)
        elif body.is_eof():  # the rest of this piece, if any, is not counted: at most one read
            self._body = None

    def _head_received(self, data: bytes) -> None:
        """``data``: more of a head not yet complete."""
        size = len(data)
        self._head_bytes += size
        limit = self._settings.max_header_bytes
        if self._line >= 0 and self._line_unfinished(data):
            self._refuse(self._uri_too_long())
        elif self._head_bytes > limit:
            self._refuse(
                HeadTooLargeError(
                    f"The request head (request line and headers) is over the {limit} bytes "
                    "this server accepts.",
                )
            )
        elif self._head_timer is None and size:
            when = self._loop.time() + self._settings.header_timeout
            self._head_timer = self._loop.call_at(when, self._head_late)

    def _line_unfinished(self, data: bytes) -> bool:
        """Whether the request line, still unfinished after ``data``, is too long already.

        Counted from the read after the last request arrived: a request
        pipelined in that read is counted from its next read, and a header
        line can be taken for its request line; past :attr:`_line_cap` either
        is too long, so nothing within the limits is refused for it.
        """
        if b"\n" in data:
            self._line = -1
            return False
        self._line += len(data)
        return self._line > self._line_cap

    def _message_arrived(self, new: int) -> None:
        """``new`` requests were parsed from the last read (more than one when pipelined)."""
        self._head_bytes = 0
        self._line = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        messages = self._messages
        for i in range(max(0, len(messages) - new), len(messages)):
            message = messages[i][0]
            if not isinstance(message, _ErrInfo):  # else the parser refused it
                if not self._line_too_long(message):
                    continue
                messages[i] = (_as_message(self._uri_too_long()), EMPTY_PAYLOAD)
            self._refused = True  # read no more, and answer nothing pipelined behind it
            while len(messages) > i + 1:
                messages.pop()
            return
        if not messages:
            return
        message, payload = messages[-1]
        if payload is EMPTY_PAYLOAD or payload.is_eof():
            self._body = None
            return
        self._body = payload
        self._body_started = self._body_last = self._loop.time()
        self._body_bytes = 0
        if self._body_timer is None:
            when = self._body_started + self._settings.body_timeout
            self._body_timer = self._loop.call_at(when, self._body_check)

    def _line_too_long(self, message: RawRequestMessage) -> bool:
        """Whether a parsed request's line (``GET /path?query HTTP/1.1``) is over the limit."""
        path: str = message.path
        size = len(path) if path.isascii() else len(path.encode("utf-8", "surrogateescape"))
        return len(message.method) + size + _LINE_EXTRA > self._line_limit

    def _uri_too_long(self) -> UriTooLongError:
        return UriTooLongError(
            f"The request line (method, path and query) is over the {self._line_limit} bytes "
            "this server accepts."
        )

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
        self._messages.append((_as_message(error), EMPTY_PAYLOAD))
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
        if isinstance(exc, LineTooLong) and _limit_named(exc) == self._limits[0]:
            exc = self._uri_too_long()
        error = _low_level_error(status, exc, self._limits[1])
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


def _low_level_error(status: int, exc: BaseException | None, field: int) -> TranslatorError:
    if isinstance(exc, TranslatorError):
        return exc
    if status >= 500:
        return TranslatorError("The server had an error while reading your request.", status=status)
    if isinstance(exc, ContentEncodingError):  # one aiohttp could decode with a package more
        return unsupported_encoding(_encoding_named(str(exc)))
    if isinstance(exc, LineTooLong):
        # Not the parser's message: it quotes the header, which may hold a key.
        return HeadTooLargeError(
            f"A header is too long: this server accepts header names and values of at "
            f"most {field} bytes.",
        )
    # Not the parser's message either: its wording is aiohttp's, and changes.
    return InvalidRequestError(
        "The request is not valid HTTP/1.1: its request line or headers could not be read.",
        code="bad_http_request",
        status=status,
    )


def _as_message(error: TranslatorError) -> _ErrInfo:
    """``error`` in place of a request: aiohttp answers it through :meth:`handle_error`."""
    return _ErrInfo(status=error.status, exc=error, message="")


_LINE_EXTRA = len("  HTTP/1.1")
"""A request line's bytes besides its method and target: two spaces and the version."""


def _limit_named(exc: LineTooLong) -> int | None:
    """The limit the parser says was passed (its second argument, in every release)."""
    try:
        return int(exc.args[1])
    except (IndexError, TypeError, ValueError):
        return None


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
