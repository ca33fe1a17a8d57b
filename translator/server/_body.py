"""Reading a request's body: its type, its encoding, its size, and a body cut short.

A body in a ``Content-Type`` the route does not take is a 415, one in a
``Content-Encoding`` this server does not decode a 415, one over the limit a
413 (before it is read, when its length says), one cut short or badly
encoded a 400 after which the connection is closed.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..errors import InvalidRequestError, PayloadTooLargeError
from ._middleware import EXCHANGE

__all__ = [
    "BROKEN_BODY",
    "CONTENT_ENCODINGS",
    "abandon_body",
    "broken_body",
    "check_content_type",
    "check_encoding",
    "read_body",
    "unsupported_encoding",
]


def check_content_type(request: web.Request, expected: str, asked: str) -> None:
    """Refuse (415) a body that is not ``expected``; ``asked`` says what to send."""
    if request.content_type != expected:
        raise InvalidRequestError(
            f"{asked} (got '{request.content_type}').",
            code="unsupported_media_type",
            status=415,
        )


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
