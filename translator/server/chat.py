"""``POST /v1/chat/completions``: route by model, apply the matrix, answer or stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..compat import Mode, Report
from ..config import Limits
from ..core import Translator, read_metadata
from ..errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    TranslatorError,
    UpstreamTimeoutError,
)
from ..http import DEADLINE
from ..model import ChatChunk, ChatRequest
from ..openai import decode_request, encode_response
from .logs import log_event
from .middleware import EXCHANGE, REQUEST_ID, Exchange
from .routing import Router
from .sse import SSEWriter

__all__ = [
    "BROKEN_BODY",
    "COMPAT_HEADER",
    "CONTENT_ENCODINGS",
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
COMPAT_HEADER = "x-translator-compat"
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
        self, translator: Translator, router: Router, limits: Limits, mode: Mode | None
    ) -> None:
        self.translator = translator
        self.router = router
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
        chat = decode_request(await read_body(request, self.max_body))
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
        backend = exchange.backend = self.router.backend_for(chat.model)
        mode = self._mode(request)
        # For this request's task: backends' retries never wait past its deadline.
        DEADLINE.set(asyncio.get_running_loop().time() + self.timeout)
        if chat.stream is True:
            exchange.stream = True
            return await self._stream(request, exchange, chat, backend, mode)
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                completion = await self.translator.complete(
                    chat, backend, mode=mode, session_scope=exchange.session_scope
                )
        except TimeoutError:
            if deadline.expired():
                raise _deadline_error(self.timeout) from None
            raise
        return web.Response(
            body=encode_response(completion.response),
            content_type="application/json",
            headers=self._report_headers(exchange, completion.report),
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
    def _report_headers(exchange: Exchange, report: Report) -> Mapping[str, str] | None:
        dropped = report.header()
        if not dropped:
            return None
        exchange.ignored = dropped
        return {IGNORED_HEADER: dropped}

    async def _stream(
        self,
        request: web.Request,
        exchange: Exchange,
        chat: ChatRequest,
        backend: str,
        mode: Mode | None,
    ) -> web.StreamResponse:
        """Headers go out only once the first chunk is in hand, so that a failure
        before it is a plain HTTP error; a failure after it ends the stream with
        an SSE error event and no ``[DONE]``."""
        loop = asyncio.get_running_loop()
        when = loop.time() + self.timeout
        stream = None
        first: ChatChunk | None = None
        try:
            async with asyncio.timeout_at(when) as deadline:
                stream = await self.translator.stream(
                    chat, backend, mode=mode, session_scope=exchange.session_scope
                )
                chunks = aiter(stream)
                first = await anext(chunks, None)
        except TimeoutError:
            if stream is not None:
                await stream.aclose()
            if deadline.expired():
                raise _deadline_error(self.timeout) from None
            raise
        except BaseException:
            if stream is not None:
                await stream.aclose()
            raise
        headers = dict(self._report_headers(exchange, stream.report) or {})
        headers[REQUEST_ID] = exchange.request_id
        writer = SSEWriter()
        try:
            await writer.start(request, headers)
        except BaseException:  # no stream began: the edge answers, or closes the connection
            await stream.aclose()
            raise
        try:
            async with asyncio.timeout_at(when) as deadline:
                if first is not None:
                    await writer.send(first)
                async for chunk in chunks:
                    await writer.send(chunk)
            await writer.done()
        except ConnectionResetError:
            log_event(log, logging.INFO, "client_disconnected", request_id=exchange.request_id)
        except TranslatorError as exc:
            await _end_with(writer, exc)
        except TimeoutError as exc:
            await _end_with(writer, _deadline_error(self.timeout) if deadline.expired() else exc)
        except Exception as exc:  # unexpected: logged, and the stream ends with a 500 event
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
            await stream.aclose()
        return writer.response


async def _end_with(writer: SSEWriter, error: TranslatorError | TimeoutError) -> None:
    if not isinstance(error, TranslatorError):
        error = UpstreamTimeoutError(str(error) or "The backend did not answer in time.")
    # The client may be gone already; then there is nobody left to tell.
    with contextlib.suppress(ConnectionResetError):
        await writer.error(error)
