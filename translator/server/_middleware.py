"""The edge of every request: request ids, API keys, OpenAI error bodies, the access log.

Whatever goes wrong becomes an OpenAI error body with a fitting status: a
:class:`~translator.errors.TranslatorError` as itself, aiohttp's own HTTP
errors (unknown route, wrong method, body too large) translated, and anything
unexpected a logged 500 that shows the client no traceback.

Response headers are made safe in one place, :func:`safe_headers`, run as
every response is prepared: a value holding a control character (a field
name or a model the client sent, echoed back) has it percent-encoded, so no
client data can break the header block. A failure once a response has begun
to be prepared cannot be answered on that connection any more; the
connection is closed instead, so the next request on it is never answered
out of step.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TranslatorError,
)
from ._observe import Exchange, Observer

__all__ = [
    "CLIENT_CLOSED",
    "EXCHANGE",
    "REQUEST_ID",
    "Exchange",
    "Handler",
    "edge_middleware",
    "error_response",
    "new_request_id",
    "public",
    "safe_header_value",
    "safe_headers",
]

log = logging.getLogger("translator.server")

REQUEST_ID = "x-request-id"
CLIENT_CLOSED = 499
"""The status metrics and the access log give a request whose client went away."""
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


try:
    EXCHANGE = web.RequestKey("translator.exchange", Exchange)
except AttributeError:  # aiohttp before typed request keys
    EXCHANGE = "translator.exchange"  # type: ignore[assignment]


def public(handler: Handler) -> Handler:
    """Mark a handler as open without an API key (health probes)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def error_response(error: TranslatorError, headers: dict[str, str] | None = None) -> web.Response:
    """The OpenAI error body for ``error``, with its status and its own headers
    (:meth:`~translator.errors.TranslatorError.headers`) besides ``headers``."""
    own = error.headers()
    if own:
        headers = {**own, **headers} if headers else own
    return web.Response(
        status=error.status, body=error.to_json(), content_type="application/json", headers=headers
    )


_ENCODED = "Content-Encoding"
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def safe_header_value(value: str) -> str:
    """``value`` with every control character but tab percent-encoded (``\\n`` as
    ``%0A``): what HTTP allows in a header value."""
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


async def safe_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The ``on_response_prepare`` hook: every header value made safe, and the
    request marked as answering (so a failure from here on closes the connection)."""
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        exchange.preparing = True
    headers = response.headers
    unsafe = {k for k, v in headers.items() if _UNSAFE.search(v) is not None}
    for name in unsafe:
        values = [safe_header_value(v) for v in headers.getall(name)]
        del headers[name]
        for v in values:
            headers.add(name, v)


def _release_frames(error: BaseException) -> None:
    """Free what the frames of a failed call still hold (a body read so far, the
    request): an error a request's body reader keeps (aiohttp stores it) would
    otherwise keep them alive in a reference cycle until the next full collection."""
    for _ in range(8):  # the error, then what it was raised in handling
        traceback.clear_frames(error.__traceback__)
        if error.__context__ is None:
            return
        error = error.__context__


def _from_http(exc: web.HTTPException, request: web.Request) -> TranslatorError:
    """aiohttp's own HTTP errors as translator errors."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFoundError(f"Invalid URL ({request.method} {request.path})", code="unknown_url")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return InvalidRequestError(
            f"Method {request.method} is not allowed for {request.path}; use {allowed}.",
            code="method_not_allowed",
            status=405,
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLargeError("The request body is too large.")
    if exc.status >= 500:
        return TranslatorError(exc.reason, status=exc.status)
    return InvalidRequestError(exc.reason, status=exc.status)


def new_request_id() -> str:
    """A fresh ``x-request-id``."""
    return "req_" + os.urandom(12).hex()


def edge_middleware(
    api_keys: tuple[str, ...], observer: Observer | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware; ``api_keys`` empty means no key is asked for. ``observer``
    watches each request (metrics, trace, access log); None: a plain access log."""
    observer = observer or Observer(metrics=None, tracing=None, access_log=True)
    keys = tuple(k.encode() for k in api_keys)
    # A caller scope per key (its sessions and files): a short hash, so that neither
    # logs nor stores hold the key.
    scopes = {key: "key-" + hashlib.sha256(key).hexdigest()[:16] for key in keys}

    def caller(header: str | None) -> bytes | None:
        """The key ``Authorization: Bearer <key>`` names, if it is accepted (the
        scheme in any case, RFC 7235)."""
        if header is None:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = credentials.strip().encode()
        found = False
        for key in keys:  # every key compared, in constant time each
            found |= hmac.compare_digest(given, key)
        return given if found else None

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        client_id = request.headers.get(REQUEST_ID)
        rid = client_id if client_id and _VALID_ID.fullmatch(client_id) else new_request_id()
        watch = observer.start(request)
        exchange = request[EXCHANGE] = Exchange(rid, watch)
        extra_headers: dict[str, str] | None = None
        try:
            if keys and not getattr(request.match_info.handler, "public", False):
                key = caller(request.headers.get("Authorization"))
                if key is None:
                    raise AuthenticationError(
                        "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'."
                    )
                exchange.scope = scopes[key]  # the handlers pass it on: sessions, files
            response = await handler(request)
        except TranslatorError as exc:
            watch.error = exc
            response = error_response(exc)
            _release_frames(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                observer.finish(watch, request, exchange, exc.status)
                raise
            if isinstance(exc, web.HTTPMethodNotAllowed):
                extra_headers = {"Allow": ", ".join(sorted(exc.allowed_methods))}
            response = error_response(_from_http(exc, request), extra_headers)
            _release_frames(exc)
        except asyncio.CancelledError:  # the client went away: counted as nginx does, 499
            observer.finish(watch, request, exchange, CLIENT_CLOSED)
            raise
        except Exception as exc:  # anything unexpected: logged here, a plain 500 for the client
            watch.error = exc
            if exchange.preparing:
                # A response was being written: whatever reached the client cannot be
                # followed by another answer on this connection. Close it.
                request.protocol.force_close()
            if exchange.allow_logging:
                log.exception("unexpected error request_id=%s", rid)
            else:
                log.error("unexpected error request_id=%s type=%s", rid, type(exc).__name__)
            response = error_response(
                TranslatorError(
                    "The server had an error while processing your request. "
                    f"Quote request id {rid} when reporting it."
                )
            )
            _release_frames(exc)
        if request.body_exists and not request.content.is_eof() and _ENCODED in request.headers:
            # An encoded body left unread: aiohttp would read it out after the answer
            # and log its decoding failure as unhandled. It is dropped with the connection.
            request.content.feed_eof()
            exchange.close_connection = True
        if not response.prepared:
            response.headers[REQUEST_ID] = rid
            if exchange.close_connection:
                response.force_close()
        observer.finish(watch, request, exchange, response.status)
        return response

    return edge
