"""``POST /v1/chat/completions``: route by model, apply the matrix, answer or stream.

Every answer says which backend gave it (``x-translator-backend``) and which
were tried, in order (``x-translator-attempts``); a caller over a rate limit
is refused before any backend is (see :mod:`translator._routing`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from .._compat import Mode
from .._core import read_metadata
from .._http import DEADLINE
from .._model import ChatChunk, ChatRequest, ChatResponse
from .._openai import decode_request, encode_response
from .._routing import Dispatcher, RateLimiter, Route, Routed, RoutedStream
from .._tokens import estimate_tokens
from ..config import Limits
from ..errors import (
    InvalidRequestError,
    TranslatorError,
    UpstreamTimeoutError,
)
from ._body import check_content_type, read_body
from ._logs import log_event
from ._middleware import EXCHANGE, REQUEST_ID, Exchange
from ._observe import RequestWatch, route_label
from ._sse import SSEWriter

__all__ = [
    "ATTEMPTS_HEADER",
    "BACKEND_HEADER",
    "COMPAT_HEADER",
    "EMULATED_HEADER",
    "IGNORED_HEADER",
    "ChatHandler",
]

log = logging.getLogger("translator.server")

T = TypeVar("T")

IGNORED_HEADER = "x-translator-ignored"
EMULATED_HEADER = "x-translator-emulated"
"""The fields the translator did for the backend (``stream``, ``tool_choice``)."""
COMPAT_HEADER = "x-translator-compat"
BACKEND_HEADER = "x-translator-backend"
ATTEMPTS_HEADER = "x-translator-attempts"
_MODES = {m.value: m for m in Mode}


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
        check_content_type(
            request,
            "application/json",
            "The request must be JSON, sent with 'Content-Type: application/json'",
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
        when = asyncio.get_running_loop().time() + self.timeout
        # For this request's task: backends' retries never wait past its deadline.
        DEADLINE.set(when)
        if chat.stream is True:
            exchange.stream = True
            return await self._stream(request, exchange, chat, body, mode, route, limiter, when)
        routed = await self._by(
            when,
            self.dispatcher.complete(chat, body, mode=mode, scope=exchange.scope),
        )
        headers = self._routed_headers(exchange, routed)
        response = routed.completion.response
        if watch is not None:
            watch.answered(routed.backend, response)
        if limiter is not None and limiter.counts_tokens(route):
            await limiter.spend(exchange.scope, route, _tokens(response))
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

    async def _by(self, when: float, call: Awaitable[T]) -> T:
        """``await call``, ended at the request's deadline ``when`` (its 504)."""
        try:
            async with asyncio.timeout_at(when) as deadline:
                return await call
        except TimeoutError:
            if deadline.expired():
                raise _deadline_error(self.timeout) from None
            raise

    @staticmethod
    def _routed_headers(exchange: Exchange, routed: Routed | RoutedStream) -> dict[str, str]:
        """The headers that say who answered, what was tried and what the matrix did."""
        exchange.backend = routed.backend
        headers: dict[str, str] = {
            BACKEND_HEADER: routed.backend,
            ATTEMPTS_HEADER: ", ".join(routed.attempts),
        }
        report = routed.report
        if not report.actions:
            return headers
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
        when: float,
    ) -> web.StreamResponse:
        """Headers go out only once the first chunk is in hand, so that a failure
        before it is a plain HTTP error (or, on a route of several backends, a
        try on the next); a failure after it ends the stream with an SSE error
        event and no ``[DONE]``."""
        routed = await self._by(
            when,
            self.dispatcher.stream(chat, body, mode=mode, scope=exchange.scope),
        )
        headers = self._routed_headers(exchange, routed)
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
