"""``POST /v1/chat/completions``: route by model, apply the matrix, answer or stream.

Every answer says which backend gave it (``x-translator-backend``) and which
were tried, in order (``x-translator-attempts``); a caller over a rate limit
is refused before any backend is (see :mod:`translator.routing`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..compat import Mode, Report
from ..config import Limits
from ..core import read_metadata
from ..errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    TranslatorError,
    UpstreamTimeoutError,
)
from ..http import DEADLINE
from ..model import ChatChunk, ChatRequest, ChatResponse
from ..openai import decode_request, encode_response
from ..routing import Dispatcher, RateLimiter, Route
from ..tokens import estimate_tokens
from .logs import log_event
from .middleware import EXCHANGE, REQUEST_ID, Exchange
from .observe import RequestWatch, route_label
from .sse import SSEWriter

__all__ = [
    "ATTEMPTS_HEADER",
    "BACKEND_HEADER",
    "BROKEN_BODY",
    "COMPAT_HEADER",
    "CONTENT_ENCODINGS",
    "EMULATED_HEADER",
    "IGNORED_HEADER",
    "ChatHandler",
    "abandon_body",
    "broken_body",
    "check_encoding",
    "read_body",
    "unsupported_encoding",
]

log = logging.getLogger("translator.server")

IGNORED_HEADER = "x-translator-ignored"
EMULATED_HEADER = "x-translator-emulated"
"""The fields the translator did for the backend (``stream``, ``tool_choice``)."""
COMPAT_HEADER = "x-translator-compat"
BACKEND_HEADER = "x-translator-backend"
ATTEMPTS_HEADER = "x-translator-attempts"
_MODES = {m.value: m for m in Mode}


BROKEN_BODY: tuple[type[BaseException], ...] = (
    asyncio.IncompleteReadError,
    ConnectionResetError,
    HttpProcessingError,
    RequestPayloadError,
)
"""What reading a body raises when the client sent less than it announced, went
away, or sent an encoding that does not decode."""


def abandon_body(request: web.Request) -> None:
    """Give up on a body that cannot be read: marked ended (else aiohttp drains it
    after the answer, meets the same error and logs it as unhandled), and the
    connection closed after the answer (its parser is past saving)."""
    request.content.feed_eof()
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        exchange.close_connection = True


def broken_body(request: web.Request) -> InvalidRequestError:
    """The 400 for a body that could not be read whole (see :func:`abandon_body`)."""
    abandon_body(request)
    return InvalidRequestError(
        "The request body could not be read whole: it ended before its declared length "
        "or its Content-Encoding does not decode.",
        code="invalid_body",
    )


CONTENT_ENCODINGS = frozenset({"gzip", "deflate", "identity"})
"""The request ``Content-Encoding`` s a body may be sent with; any other is a 415."""


def unsupported_encoding(encoding: str) -> InvalidRequestError:
    """The 415 for a request body sent with ``encoding``."""
    return InvalidRequestError(
        f"The request's Content-Encoding '{encoding[:64]}' is not supported; "
        "send the body as is, or with gzip or deflate.",
        code="unsupported_content_encoding",
        status=415,
    )


def check_encoding(request: web.Request) -> None:
    """Refuse (415) a body whose ``Content-Encoding`` this server does not decode:
    never read such a body as if it were plain."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)
    if encoding is not None and encoding.strip().lower() not in CONTENT_ENCODINGS:
        abandon_body(request)
        raise unsupported_encoding(encoding)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with a 413 past ``limit`` bytes (before reading it, if it says).

    A ``Content-Encoding`` body arrives decoded, so its Content-Length says
    nothing of its size: it is read in pieces, the limit applied to what it
    decodes to. A body cut short or badly encoded is a 400, one in an
    encoding not supported a 415.
    """
    check_encoding(request)
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(
            f"The request body is {length} bytes; this server accepts at most {limit}."
        )
    try:
        if length is not None and hdrs.CONTENT_ENCODING not in request.headers:
            return await request.content.readexactly(length) if length else b""
        body = bytearray()
        async for piece in request.content.iter_any():
            body += piece
            if len(body) > limit:
                raise PayloadTooLargeError(f"The request body is over the {limit} bytes allowed.")
    except BROKEN_BODY:
        raise broken_body(request) from None
    return bytes(body)


def _deadline_error(seconds: float) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"The request did not finish within {seconds:g} seconds.", code="request_timeout"
    )


class ChatHandler:
    """Everything a chat request needs, prepared once when the app is built."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        limits: Limits,
        mode: Mode | None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.limiter = limiter
        self.max_body = limits.max_body_bytes
        self.max_messages = limits.max_messages
        self.timeout = limits.request_timeout
        self.mode = mode

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The route handler."""
        if request.content_type != "application/json":
            raise InvalidRequestError(
                "The request must be JSON, sent with 'Content-Type: application/json' "
                f"(got '{request.content_type}').",
                code="unsupported_media_type",
                status=415,
            )
        body = await read_body(request, self.max_body)
        chat = decode_request(body)
        if len(chat.messages) > self.max_messages:
            raise InvalidRequestError(
                f"The request has {len(chat.messages)} messages; "
                f"this server accepts at most {self.max_messages}.",
                param="messages",
                code="too_many_messages",
            )
        exchange = request[EXCHANGE]
        exchange.allow_logging = read_metadata(chat).allow_logging
        exchange.model = chat.model
        route = self.dispatcher.plan(chat.model).route
        watch = exchange.watch
        if watch is not None:
            watch.routed(chat.model, route_label(route.model))
            if watch.keeps_content:
                watch.prompt(chat)
        limiter = self.limiter
        if limiter is not None and limiter.applies(route):
            await limiter.admit(exchange.scope, route)
        else:
            limiter = None
        mode = self._mode(request)
        # For this request's task: backends' retries never wait past its deadline.
        DEADLINE.set(asyncio.get_running_loop().time() + self.timeout)
        if chat.stream is True:
            exchange.stream = True
            return await self._stream(request, exchange, chat, body, mode, route, limiter)
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                routed = await self.dispatcher.complete(chat, body, mode=mode, scope=exchange.scope)
        except TimeoutError:
            if deadline.expired():
                raise _deadline_error(self.timeout) from None
            raise
        exchange.backend = routed.backend
        response = routed.completion.response
        if watch is not None:
            watch.answered(routed.backend, response)
        if limiter is not None and limiter.counts_tokens(route):
            await limiter.spend(exchange.scope, route, _tokens(response))
        headers = self._report_headers(exchange, routed.report)
        headers[BACKEND_HEADER] = routed.backend
        headers[ATTEMPTS_HEADER] = ", ".join(routed.attempts)
        return web.Response(
            body=encode_response(response), content_type="application/json", headers=headers
        )

    def _mode(self, request: web.Request) -> Mode | None:
        asked = request.headers.get(COMPAT_HEADER)
        if asked is None:
            return self.mode
        mode = _MODES.get(asked.strip().lower())
        if mode is None:
            raise InvalidRequestError(
                f"The {COMPAT_HEADER} header must be 'strict' or 'lenient' (got '{asked}').",
                code="invalid_header",
            )
        return mode

    @staticmethod
    def _report_headers(exchange: Exchange, report: Report) -> dict[str, str]:
        if not report.actions:
            return {}
        headers: dict[str, str] = {}
        dropped = report.header()
        if dropped:
            exchange.ignored = dropped
            headers[IGNORED_HEADER] = dropped
        emulated = report.emulated
        if emulated:
            headers[EMULATED_HEADER] = ", ".join(emulated)
        return headers

    async def _stream(
        self,
        request: web.Request,
        exchange: Exchange,
        chat: ChatRequest,
        body: bytes,
        mode: Mode | None,
        route: Route,
        limiter: RateLimiter | None,
    ) -> web.StreamResponse:
        """Headers go out only once the first chunk is in hand, so that a failure
        before it is a plain HTTP error (or, on a route of several backends, a
        try on the next); a failure after it ends the stream with an SSE error
        event and no ``[DONE]``."""
        loop = asyncio.get_running_loop()
        when = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(when) as deadline:
                routed = await self.dispatcher.stream(chat, body, mode=mode, scope=exchange.scope)
        except TimeoutError:
            if deadline.expired():
                raise _deadline_error(self.timeout) from None
            raise
        exchange.backend = routed.backend
        headers = self._report_headers(exchange, routed.report)
        headers[BACKEND_HEADER] = routed.backend
        headers[ATTEMPTS_HEADER] = ", ".join(routed.attempts)
        headers[REQUEST_ID] = exchange.request_id
        tokens = _StreamTokens() if limiter is not None and limiter.counts_tokens(route) else None
        watch = exchange.watch
        writer = SSEWriter()
        try:
            await writer.start(request, headers)
        except BaseException:  # no stream began: the edge answers, or closes the connection
            await routed.aclose()
            raise
        if watch is not None:
            watch.stream_started(routed.backend)
        try:
            async with asyncio.timeout_at(when) as deadline:
                first = routed.first
                if first is not None:
                    await writer.send(first)
                    if watch is not None:
                        watch.chunk(first)
                    if tokens is not None:
                        tokens.add(first)
                if tokens is None and watch is None:
                    async for chunk in routed:
                        await writer.send(chunk)
                else:
                    async for chunk in routed:
                        await writer.send(chunk)
                        if watch is not None:
                            watch.chunk(chunk)
                        if tokens is not None:
                            tokens.add(chunk)
            await writer.done()
        except ConnectionResetError:
            log_event(log, logging.INFO, "client_disconnected", request_id=exchange.request_id)
        except TranslatorError as exc:
            routed.failed(exc)
            await _end_with(writer, exc, watch)
        except TimeoutError as exc:
            routed.failed(exc)
            error = _deadline_error(self.timeout) if deadline.expired() else exc
            await _end_with(writer, error, watch)
        except Exception as exc:  # unexpected: logged, and the stream ends with a 500 event
            if watch is not None:
                watch.error = exc
            rid = exchange.request_id
            if exchange.allow_logging:
                log.exception("unexpected error mid-stream request_id=%s", rid)
            else:
                kind = type(exc).__name__
                log.error("unexpected error mid-stream request_id=%s type=%s", rid, kind)
            await _end_with(
                writer,
                TranslatorError(
                    "The server had an error while streaming your answer. "
                    f"Quote request id {rid} when reporting it."
                ),
            )
        finally:
            if watch is not None:
                watch.stream_ended()
            await routed.aclose()
            if limiter is not None and tokens is not None:
                await limiter.spend(exchange.scope, route, tokens.total)
        return writer.response


def _tokens(response: ChatResponse) -> int:
    """The tokens an answer used: as the backend reported, else estimated from its text."""
    total = response.usage.total_tokens
    if total:
        return total
    return sum(estimate_tokens(c.message.content or "") for c in response.choices)


class _StreamTokens:
    """The tokens a stream used: its usage chunk's total, else an estimate from its text."""

    __slots__ = ("estimate", "reported")

    def __init__(self) -> None:
        self.estimate = 0
        self.reported = 0

    def add(self, chunk: ChatChunk) -> None:
        usage = chunk.usage
        if usage is not None:
            self.reported = usage.total_tokens
        for choice in chunk.choices:
            content = choice.delta.content
            if content:
                self.estimate += estimate_tokens(content)

    @property
    def total(self) -> int:
        return self.reported or self.estimate


async def _end_with(
    writer: SSEWriter, error: TranslatorError | TimeoutError, watch: RequestWatch | None = None
) -> None:
    if not isinstance(error, TranslatorError):
        error = UpstreamTimeoutError(str(error) or "The backend did not answer in time.")
    if watch is not None:
        watch.error = error
    # The client may be gone already; then there is nobody left to tell.
    with contextlib.suppress(ConnectionResetError):
        await writer.error(error)
