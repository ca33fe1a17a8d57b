"""The pooled client, bound per backend, and the one retry loop of every call.

:meth:`BoundClient.send` (a whole reply) and :meth:`BoundClient.stream` (a
body read as it arrives) run their attempts through the same loop,
:meth:`BoundClient._attempts`: what a failed attempt means is told by
:mod:`translator._http.transport`, what a status means by
:mod:`translator._http.status`, and the pause between attempts (exponential
backoff with jitter, or the upstream's ``Retry-After``, never past the
request's :data:`DEADLINE`) is here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import aiohttp
import msgspec

from .._telemetry import WATCH, Attempt
from ..errors import MalformedUpstreamError, UpstreamError, UpstreamStatusError
from .failures import failure_of
from .redact import Redactor
from .status import MessageParser, Reply, check, parse_retry_after, retried, status_error
from .transport import timeout_error, transport_error

__all__ = ["DEADLINE", "IDEMPOTENT_METHODS", "BoundClient", "HttpClient", "HttpPolicy"]

log = logging.getLogger("translator.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods taken as idempotent when a call does not say (RFC 9110, section 9.2.2)."""

DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "translator_deadline", default=None
)
"""The event loop time by which the current request must be answered, if any."""

_sleep = asyncio.sleep  # the pause between attempts


class _Answered(Protocol):
    """What an attempt that got an answer gives: a whole reply, or an opened stream."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


_Outcome = TypeVar("_Outcome", bound=_Answered)


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
        self._redactor = Redactor()

    def redact(self, text: str, *, tokens: bool = False) -> str:
        """``text`` without the credentials this client sent (see :mod:`.redact`)."""
        return self._redactor.redact(text, tokens=tokens)

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
        upstream may have received it (see :mod:`translator._http`); by default
        it follows the method (GET yes, POST no). ``retry=False`` sends once.
        ``data`` may be a function that builds the form, called once per
        attempt. An error status is returned, not raised: see :meth:`check`.
        """
        self._redactor.remember(headers, params)

        async def attempt(trace: Mapping[str, str] | None) -> Reply:
            payload: Any = body
            if payload is None:
                payload = data if isinstance(data, aiohttp.FormData) or data is None else data()
            async with self.client.session.request(
                method,
                url,
                data=payload,
                headers=trace,
                params=params,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return Reply(response.status, response.headers, await self.read_reply(response))

        return await self._attempts(method, url, headers, idempotent, retry, attempt)

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
        self._redactor.remember(headers, None)

        async def attempt(trace: Mapping[str, str] | None) -> Reply | aiohttp.ClientResponse:
            response = await self.client.session.request(
                method,
                url,
                data=body,
                headers=trace,
                timeout=self._timeout,
                allow_redirects=False,
            )
            if 200 <= response.status < 300:
                return response
            try:  # an error status: its whole (short) body, and the connection back
                return Reply(response.status, response.headers, await self.read_reply(response))
            except (aiohttp.ClientError, TimeoutError) as exc:  # not tried again
                raise transport_error(exc, False, self.backend)[0] from exc
            finally:
                response.release()

        opened = await self._attempts(method, url, headers, idempotent, True, attempt)
        if isinstance(opened, Reply):
            self.check(opened, parse_error)  # the last attempt's error status: raised
            raise AssertionError("unreachable")  # pragma: no cover
        response = opened
        try:
            yield response
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            if isinstance(exc, TimeoutError):
                raise timeout_error(self.backend) from exc
            log.debug(
                "%s: %s %s: the stream was cut off: %r",
                self.backend,
                method,
                self._redactor.url(url),
                exc,
            )
            raise MalformedUpstreamError(
                f"The {self.backend} backend's stream was cut off before its end.",
                backend=self.backend,
            ) from exc
        except TimeoutError as exc:
            if isinstance(exc, UpstreamError):
                raise
            raise timeout_error(self.backend) from exc
        finally:
            if response.content.at_eof() and not response.content.exception():
                response.release()
            else:
                response.close()

    def check(self, reply: Reply, parse_error: MessageParser | None = None) -> Reply:
        """Return ``reply`` if its status is OK, else raise it as an upstream error
        (how each status maps: :func:`translator._http.status.check`)."""
        return check(reply, self.backend, self._redactor, parse_error)

    def status_error(
        self, status: int, body: bytes, parse_error: MessageParser | None = None
    ) -> UpstreamStatusError:
        """The error for an upstream's error ``status`` with its ``body``."""
        return status_error(status, body, self.backend, self._redactor, parse_error)

    # -- the retry loop -----------------------------------------------------

    async def _attempts(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        idempotent: bool | None,
        retry: bool,
        attempt: Callable[[Mapping[str, str] | None], Awaitable[_Outcome]],
    ) -> _Outcome:
        """Run ``attempt`` until it gives an answer that is not tried again.

        A transport failure is raised once no further attempt is safe; a
        status is returned (the caller judges it) once it is not retried, or
        when its ``Retry-After`` asks too long a wait.
        """
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        attempts = 1 + (max(0, self.policy.retries) if retry else 0)
        for number in range(attempts):
            last = number == attempts - 1
            watched = self._watch(method, url, number)
            try:
                outcome = await attempt(_with_trace(headers, watched))
            except UpstreamError as exc:  # a reply over max_reply_bytes
                if watched is not None:
                    watched.failed(exc)
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, retryable = transport_error(exc, idempotent, self.backend)
                if watched is not None:
                    watched.failed(error)
                if last or not retryable:
                    raise error from exc
                await self._pause(number, None, method, url, failure_of(error))
                continue
            status = outcome.status
            if watched is not None:
                watched.finished(status)
            if last or not retried(status, idempotent):
                return outcome
            if not await self._pause(
                number, outcome.headers.get("Retry-After"), method, url, status
            ):
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    async def read_reply(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body of ``response``, refused (a 502) past the policy's
        ``max_reply_bytes`` (before reading it, if its length says)."""
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
        return watcher.upstream_attempt(self.backend, method, self._redactor.url(url), attempt)

    async def _pause(
        self, attempt: int, retry_after: str | None, method: str, url: str, why: object
    ) -> bool:
        """Sleep before the next attempt; False when ``Retry-After`` asks too long a wait."""
        delay = self._backoff(attempt, retry_after)
        url = self._redactor.url(url)
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
            delay = parse_retry_after(retry_after)
            if delay is not None:
                deadline = DEADLINE.get()
                if deadline is not None and _now() + delay >= deadline:
                    return None  # answered now: waiting would end past the deadline
                return delay if delay <= self.policy.retry_after_max else None
        base = min(self.policy.backoff_max, self.policy.backoff_base * (2**attempt))
        return random.uniform(base / 2, base)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _with_trace(
    headers: Mapping[str, str] | None, watched: Attempt | None
) -> Mapping[str, str] | None:
    """``headers`` plus the watched attempt's trace headers, if it has any."""
    if watched is None or not watched.headers:
        return headers
    return {**(headers or {}), **watched.headers}


def _json_dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()
