"""The shared aiohttp client: pooling, timeouts, retries, and error mapping.

One :class:`HttpClient` (one pooled ``aiohttp.ClientSession``) serves every
backend of a translator. Each backend binds it to its own :class:`HttpPolicy`.

Transport failures become :class:`~translator.errors.UpstreamError` s: a
timeout is a 504, an unreachable upstream a 502, a reply that is not HTTP or
is cut off a 502. An error status is the upstream's message with a fitting
status (see :meth:`BoundClient.check`); an upstream that refuses the
translator's own credentials (401, 403) is a 502, so that a client does not
take it for a problem with its own key.

Retries (exponential backoff with jitter, ``Retry-After`` honoured) depend on
whether the upstream may have acted on the request:

* every request is retried when the connection could not be opened (nothing
  was sent) and on 429 and 503 (the upstream says it did not process it);
* a request marked ``idempotent`` (a GET, a poll, a chat completion that
  creates nothing) is also retried on 502 and 504 and when the connection is
  lost after the request went out: a gateway may give up on an upstream
  that has already accepted the request, and a job or a file created twice
  is worse than an error.

Nothing is retried after a read timeout (the upstream may be working on the
request), on any other status, or once a stream has started. Cancelling a
request closes its connection. A ``Retry-After`` wait that would outlast the
request's deadline (:data:`DEADLINE`, which the server sets) is not waited:
the 429 or 503 is answered at once, with the upstream's ``Retry-After`` kept
on the error for the client.

A whole reply over ``max_reply_bytes`` is not read past that size: it is a
502 ``upstream_reply_too_large``.

Upstream words that reach a log or a client never carry the credentials the
translator sent: each :class:`BoundClient` remembers the values of the
credential headers and query parameters it sends (``Authorization``,
``api-key``, ``key``, ...) and blanks them out of an upstream's message;
a log line also loses anything that looks like a token (``Bearer ...``,
``sk-...``).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from .errors import (
    MalformedUpstreamError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .telemetry import WATCH, Attempt

__all__ = [
    "DEADLINE",
    "IDEMPOTENT_METHODS",
    "RETRIED_ALWAYS",
    "RETRIED_IF_IDEMPOTENT",
    "UPSTREAM_AUTH_CODE",
    "BoundClient",
    "HttpClient",
    "HttpPolicy",
    "MessageParser",
    "Reply",
    "UpstreamDetail",
    "upstream_error_kind",
]

log = logging.getLogger("translator.http")

RETRIED_ALWAYS = frozenset({429, 503})
"""Statuses retried for every request: the upstream says it did not process it."""
RETRIED_IF_IDEMPOTENT = frozenset({502, 504})
"""Statuses retried only for an idempotent request: the upstream may have acted on it."""
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods taken as idempotent when a call does not say (RFC 9110, section 9.2.2)."""

UPSTREAM_AUTH_CODE = "upstream_authentication_failed"
"""The ``code`` of the 502 for an upstream that refused the translator's credentials."""

DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "translator_deadline", default=None
)
"""The event loop time by which the current request must be answered, if any."""

_sleep = asyncio.sleep  # the pause between attempts

# Upstream 5xx statuses a client should see as they are; any other 5xx is a 502.
_KEPT_5XX = frozenset({503, 504})
# A connection lost once the request may have gone out (checked after connect failures).
_LOST_AFTER_SENDING = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
)
# Upstream statuses that mean the translator's own credentials were refused.
_CREDENTIALS_REFUSED = frozenset({401, 403})
# Header and query parameter names (lower case) whose values are credentials.
_CREDENTIAL_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "key",
        "api_key",
        "access_token",
    }
)
_REMEMBERED = 8  # credentials a bound client remembers (the most recent)
_REDACTED = "[redacted]"
# Anything that looks like a credential, blanked from log lines.
_TOKEN = re.compile(
    r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+|\bsk-[\w\-*.]{6,}|\b((?:api[_-]?)?key=)[^\s\"'&,;]+"
)


class HttpPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and retries for one backend.

    ``connect_timeout`` bounds opening a connection, ``read_timeout`` each
    wait for data, ``total_timeout`` one attempt as a whole. ``retries`` is
    the number of extra attempts; a ``Retry-After`` longer than
    ``retry_after_max`` seconds, or past the :data:`DEADLINE`, is not waited
    for (the error is returned). A whole reply is read up to
    ``max_reply_bytes``; a longer one is a 502.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    total_timeout: float = 600.0
    retries: int = 2
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    max_reply_bytes: int = 64 * 1024 * 1024

    def timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )


class Reply(msgspec.Struct, frozen=True):
    """A whole upstream reply."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """A 2xx status (redirects are not followed, so a 3xx is not OK either)."""
        return 200 <= self.status < 300


class UpstreamDetail(msgspec.Struct, frozen=True):
    """An upstream's own error, kept as it said it: passed through to the client."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


MessageParser = Callable[[bytes], str | UpstreamDetail | None]
"""Reads an upstream error body: a message, a whole :class:`UpstreamDetail`, or None."""

FormFactory = Callable[[], aiohttp.FormData]


class HttpClient:
    """One pooled client session for a translator, opened on first use."""

    def __init__(self, *, limit: int = 100, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session (created inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=_json_dumps, raise_for_status=False
            )
        return self._session

    def bind(self, backend: str, policy: HttpPolicy | None = None) -> BoundClient:
        """A view of this client with ``backend``'s name and policy."""
        return BoundClient(self, backend, policy or HttpPolicy())

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class BoundClient:
    """The shared client as one backend uses it."""

    def __init__(self, client: HttpClient, backend: str, policy: HttpPolicy) -> None:
        self.client = client
        self.backend = backend
        self.policy = policy
        self._timeout = policy.timeout()
        self._secrets: dict[str, None] = {}  # the credentials sent, oldest first
        self._seen: tuple[object, object] = (None, None)  # the last headers and params scanned

    def redact(self, text: str, *, tokens: bool = False) -> str:
        """``text`` without the credentials this client sent.

        ``tokens`` also blanks anything that looks like one (``Bearer ...``,
        ``sk-...``), for a log line, where a false match costs nothing.
        """
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return _TOKEN.sub(_redact_token, text) if tokens else text

    async def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        data: aiohttp.FormData | FormFactory | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        retry: bool = True,
    ) -> Reply:
        """Send one request and read the whole reply, retrying where that is safe.

        ``idempotent`` says whether the request may be repeated after the
        upstream may have received it (see the module docs); by default it
        follows the method (GET yes, POST no). ``retry=False`` sends once.
        ``data`` may be a function that builds the form, called once per
        attempt. An error status is returned, not raised: see :meth:`check`.
        """
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        if (headers, params) != self._seen:
            self._remember(headers, params)
        attempts = 1 + (max(0, self.policy.retries) if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            payload: Any = body
            if payload is None:
                payload = data if isinstance(data, aiohttp.FormData) or data is None else data()
            watched = self._watch(method, url, attempt)
            try:
                async with self.client.session.request(
                    method,
                    url,
                    data=payload,
                    headers=_with_trace(headers, watched),
                    params=params,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    reply = Reply(response.status, response.headers, await self._read(response))
            except UpstreamError as exc:  # a reply over max_reply_bytes
                if watched is not None:
                    watched.failed(exc)
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, retryable = self._transport_error(exc, idempotent)
                if watched is not None:
                    watched.failed(error)
                if last or not retryable:
                    raise error from exc
                await self._pause(attempt, None, method, url, upstream_error_kind(error))
                continue
            if watched is not None:
                watched.finished(reply.status)
            if last or not _retried(reply.status, idempotent):
                return reply
            if not await self._pause(
                attempt, reply.headers.get("Retry-After"), method, url, reply.status
            ):
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        parse_error: MessageParser | None = None,
        idempotent: bool | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streaming request; yields the response once its status is OK.

        Retries happen only before the body is handed over, as :meth:`send`
        does them (``idempotent`` means the same). An error status is
        raised as :class:`UpstreamStatusError`. Inside the block, a body that is
        cut off raises :class:`MalformedUpstreamError` and a stalled one
        :class:`UpstreamTimeoutError`. Leaving the block early (or being
        cancelled) closes the upstream connection; a body read to its end gives
        the connection back to the pool.
        """
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        if (headers, None) != self._seen:
            self._remember(headers, None)
        attempts = 1 + max(0, self.policy.retries)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            watched = self._watch(method, url, attempt)
            try:
                response = await self.client.session.request(
                    method,
                    url,
                    data=body,
                    headers=_with_trace(headers, watched),
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, retryable = self._transport_error(exc, idempotent)
                if watched is not None:
                    watched.failed(error)
                if last or not retryable:
                    raise error from exc
                await self._pause(attempt, None, method, url, upstream_error_kind(error))
                continue
            if watched is not None:
                watched.finished(response.status)
            if not 200 <= response.status < 300:
                try:
                    reply = Reply(response.status, response.headers, await self._read(response))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise self._transport_error(exc, False)[0] from exc
                finally:
                    response.release()
                if (
                    not last
                    and _retried(reply.status, idempotent)
                    and await self._pause(
                        attempt, reply.headers.get("Retry-After"), method, url, reply.status
                    )
                ):
                    continue
                self.check(reply, parse_error)
            try:
                yield response
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                if isinstance(exc, TimeoutError):
                    raise self._timeout_error() from exc
                log.debug(
                    "%s: %s %s: the stream was cut off: %r",
                    self.backend,
                    method,
                    self.redact(url, tokens=True),
                    exc,
                )
                raise MalformedUpstreamError(
                    f"The {self.backend} backend's stream was cut off before its end.",
                    backend=self.backend,
                ) from exc
            except TimeoutError as exc:
                if isinstance(exc, UpstreamError):
                    raise
                raise self._timeout_error() from exc
            finally:
                if response.content.at_eof() and not response.content.exception():
                    response.release()
                else:
                    response.close()
            return

    def check(self, reply: Reply, parse_error: MessageParser | None = None) -> Reply:
        """Return ``reply`` if its status is OK, else raise it as an upstream error.

        A 4xx keeps its status, except 401 and 403: the upstream refused the
        translator's own credentials, which is a 502 with code
        :data:`UPSTREAM_AUTH_CODE` (the upstream's words are logged, not
        shown: they may quote the key). 503 and 504 keep their status; any
        other status (another 5xx, a redirect, which is never followed) is a 502.
        When ``parse_error`` returns an :class:`UpstreamDetail`, its message,
        type, param and code are passed through unchanged; a plain message is
        prefixed with the backend's name and status.
        """
        if reply.ok:
            return reply
        if 300 <= reply.status < 400:
            where = reply.headers.get("Location", "elsewhere")
            raise UpstreamStatusError(
                f"The {self.backend} backend answered {reply.status}, redirecting to {where}; "
                "redirects are not followed: check the backend's base_url.",
                status=502,
                backend=self.backend,
                error_type="upstream_error",
                code=f"upstream_{reply.status}",
            )
        error = self.status_error(reply.status, reply.body, parse_error)
        if reply.status in RETRIED_ALWAYS:  # the client is told how long to wait, if known
            wait = _parse_retry_after(reply.headers.get("Retry-After") or "")
            error.retry_after = None if wait is None else math.ceil(wait)
        raise error

    def status_error(
        self, status: int, body: bytes, parse_error: MessageParser | None = None
    ) -> UpstreamStatusError:
        """The error for an upstream's error ``status`` with its ``body``."""
        found: str | UpstreamDetail | None = None
        if parse_error is not None:
            try:
                found = parse_error(body)
            except (msgspec.DecodeError, ValueError, TypeError):
                found = None
        if status in _CREDENTIALS_REFUSED:
            return self._credentials_refused(status, found, body)
        shown = status if 400 <= status < 500 or status in _KEPT_5XX else 502
        if isinstance(found, UpstreamDetail):
            return UpstreamStatusError(
                self.redact(found.message),
                status=shown,
                backend=self.backend,
                error_type=found.type or (None if shown < 500 else "upstream_error"),
                param=found.param,
                code=found.code,
                upstream_status=status,
            )
        message = found or body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
        return UpstreamStatusError(
            f"The {self.backend} backend answered {status}: {self.redact(message)}",
            status=shown,
            backend=self.backend,
            error_type=None if shown < 500 else "upstream_error",
            code=f"upstream_{status}",
            upstream_status=status,
        )

    # -- internals ----------------------------------------------------------

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, refused past ``max_reply_bytes`` (before reading, if it says)."""
        limit = self.policy.max_reply_bytes
        length = response.content_length
        if length is not None and length <= limit:
            return await response.read()
        body = bytearray()
        if length is None:
            async for piece in response.content.iter_any():
                body += piece
                if len(body) > limit:
                    break
            else:
                return bytes(body)
        response.close()
        log.warning("%s: a reply over %d bytes was refused", self.backend, limit)
        raise UpstreamError(
            f"The {self.backend} backend's reply is over the {limit} bytes this server "
            "accepts (max_reply_bytes).",
            backend=self.backend,
            code="upstream_reply_too_large",
        )

    def _watch(self, method: str, url: str, attempt: int) -> Attempt | None:
        """The watched attempt, when a watcher is set (the URL shown without credentials)."""
        watcher = WATCH.get()
        if watcher is None:
            return None
        return watcher.upstream_attempt(self.backend, method, self._shown(url), attempt)

    def _shown(self, url: str) -> str:
        """``url`` as a log or a trace may show it: no user info, no credentials."""
        parsed = URL(url)
        if parsed.user is not None or parsed.password is not None:
            parsed = parsed.with_user(None)
        return self.redact(str(parsed), tokens=True)

    def _credentials_refused(
        self, status: int, found: str | UpstreamDetail | None, body: bytes
    ) -> UpstreamStatusError:
        """The 502 for an upstream's 401 or 403: the translator's key, not the client's."""
        said = found.message if isinstance(found, UpstreamDetail) else found
        said = said or body[:300].decode("utf-8", "replace").strip() or "no reason given"
        log.warning(
            "%s: the backend refused the configured credentials (HTTP %d): %s",
            self.backend,
            status,
            self.redact(said, tokens=True),
        )
        return UpstreamStatusError(
            f"The {self.backend} backend refused the translator's credentials (HTTP {status}): "
            "its configured API key is missing, wrong or not allowed to do this. "
            "The API key sent to the translator is not at fault.",
            status=502,
            backend=self.backend,
            error_type="upstream_error",
            code=UPSTREAM_AUTH_CODE,
        )

    async def _pause(
        self, attempt: int, retry_after: str | None, method: str, url: str, why: object
    ) -> bool:
        """Sleep before the next attempt; False when ``Retry-After`` asks too long a wait."""
        delay = self._backoff(attempt, retry_after)
        url = self.redact(url, tokens=True)
        if delay is None:
            log.info("%s: %s %s -> %s, Retry-After too long", self.backend, method, url, why)
            return False
        log.info("%s: %s %s -> %s, retry in %.2fs", self.backend, method, url, why, delay)
        watcher = WATCH.get()
        if watcher is not None:
            watcher.upstream_retry(self.backend, str(why))
        await _sleep(delay)
        return True

    def _backoff(self, attempt: int, retry_after: str | None) -> float | None:
        if retry_after is not None:
            delay = _parse_retry_after(retry_after)
            if delay is not None:
                deadline = DEADLINE.get()
                if deadline is not None and _now() + delay >= deadline:
                    return None  # answered now: waiting would end past the deadline
                return delay if delay <= self.policy.retry_after_max else None
        base = min(self.policy.backoff_max, self.policy.backoff_base * (2**attempt))
        return random.uniform(base / 2, base)

    def _transport_error(self, exc: BaseException, idempotent: bool) -> tuple[UpstreamError, bool]:
        """The error for a failed attempt, and whether another attempt is safe.

        A connection that could not be opened sent nothing, so any request may
        be tried again; one lost after the request went out (a reset, a server
        that hung up) may have been acted on, so only an idempotent request is.
        """
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return self._timeout_error(), True  # nothing was sent yet
        if isinstance(exc, TimeoutError):
            return self._timeout_error(), False
        if isinstance(exc, aiohttp.ClientSSLError):
            return self._unreachable(exc), False
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._unreachable(exc), True  # nothing was sent yet
        if isinstance(exc, _LOST_AFTER_SENDING):
            return self._unreachable(exc), idempotent
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
            log.debug("%s: a reply that is not valid HTTP: %r", self.backend, exc)
            error = MalformedUpstreamError(
                f"The {self.backend} backend sent a reply that is not valid HTTP "
                f"({type(exc).__name__}).",
                backend=self.backend,
            )
            return error, False
        return self._unreachable(exc), False

    def _remember(
        self, headers: Mapping[str, str] | None, params: Mapping[str, str] | None
    ) -> None:
        """Note the credentials among ``headers`` and ``params``, to keep them out of messages."""
        self._seen = (headers, params)
        for given in (headers, params):
            for name, value in (given or {}).items():
                if name.lower() not in _CREDENTIAL_NAMES:
                    continue
                token = value.strip().partition(" ")[2].strip()
                for secret in (value, token):
                    if len(secret) >= 4 and secret not in self._secrets:
                        self._secrets[secret] = None
        while len(self._secrets) > _REMEMBERED:
            del self._secrets[next(iter(self._secrets))]

    def _timeout_error(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"The {self.backend} backend did not answer in time.", backend=self.backend
        )

    def _unreachable(self, exc: BaseException) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"The {self.backend} backend could not be reached: {type(exc).__name__}.",
            backend=self.backend,
        )


def _now() -> float:
    return asyncio.get_running_loop().time()


def upstream_error_kind(error: BaseException) -> str:
    """What kind of upstream failure ``error`` is, for metrics and retry reasons:
    ``timeout``, ``unavailable``, ``malformed``, ``auth`` (the translator's
    credentials refused), ``rate_limited``, ``5xx``, ``4xx``, else ``other``."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, UpstreamUnavailableError):
        return "unavailable"
    if isinstance(error, MalformedUpstreamError):
        return "malformed"
    if isinstance(error, UpstreamStatusError):
        if error.code == UPSTREAM_AUTH_CODE:
            return "auth"
        if error.status == 429:
            return "rate_limited"
        return "5xx" if error.status >= 500 else "4xx"
    return "other"


def _with_trace(
    headers: Mapping[str, str] | None, watched: Attempt | None
) -> Mapping[str, str] | None:
    """``headers`` plus the watched attempt's trace headers, if it has any."""
    if watched is None or not watched.headers:
        return headers
    return {**(headers or {}), **watched.headers}


def _retried(status: int, idempotent: bool) -> bool:
    """Whether an attempt answered ``status`` is tried again."""
    return status in RETRIED_ALWAYS or (idempotent and status in RETRIED_IF_IDEMPOTENT)


def _parse_retry_after(value: str) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay or HTTP date), or None."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, parsed.timestamp() - time.time())
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _redact_token(match: re.Match[str]) -> str:
    """A token's replacement: its scheme (``Bearer``, ``key=``) kept, its value blanked."""
    scheme, space, key = match.group(1, 2, 3)
    if scheme:
        return f"{scheme}{space}{_REDACTED}"
    return f"{key}{_REDACTED}" if key else _REDACTED


def _json_dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()
