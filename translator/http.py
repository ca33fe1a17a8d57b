"""The shared aiohttp client: pooling, timeouts, retries, and error mapping.

One :class:`HttpClient` (one pooled ``aiohttp.ClientSession``) serves every
backend of a translator. Each backend binds it to its own :class:`HttpPolicy`.
Transport failures become :class:`~translator.errors.UpstreamError` s:
a timeout is a 504, an unreachable upstream a 502. Retries (exponential
backoff with jitter, ``Retry-After`` honoured) happen on connection errors and
on 429, 502, 503 and 504, never on other statuses and never once a stream has
started.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec

from .errors import (
    MalformedUpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["RETRY_STATUSES", "BoundClient", "HttpClient", "HttpPolicy", "Reply"]

log = logging.getLogger("translator.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class HttpPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and retries for one backend."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    total_timeout: float = 600.0
    retries: int = 2
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    retry_after_max: float = 30.0

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
        return self.status < 400


MessageParser = Callable[[bytes], str | None]


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

    async def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        data: aiohttp.FormData | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Reply:
        """Send one request and read the whole reply, retrying where that is safe.

        An error status is returned, not raised: see :meth:`check`.
        """
        attempts = 1 + (self.policy.retries if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                async with self.client.session.request(
                    method,
                    url,
                    data=body if body is not None else data,
                    headers=headers,
                    params=params,
                    timeout=self._timeout,
                ) as response:
                    payload = await response.read()
                    reply = Reply(response.status, response.headers, payload)
            except (aiohttp.ClientConnectionError, OSError) as exc:
                if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
                    raise self._timeout_error(url) from exc
                if last or not isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
                    raise self._unreachable(url, exc) from exc
                await asyncio.sleep(self._backoff(attempt, None))
                continue
            except TimeoutError as exc:
                raise self._timeout_error(url) from exc
            if reply.status in RETRY_STATUSES and not last:
                delay = self._backoff(attempt, reply.headers.get("Retry-After"))
                log.info(
                    "%s: %s %s -> %d, retry in %.2fs",
                    self.backend,
                    method,
                    url,
                    reply.status,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
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
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streaming request; yields the response once its status is OK.

        Retries happen only before the first byte of the body is read. An
        error status is raised as :class:`UpstreamStatusError`. Leaving the
        block (or cancellation) closes the upstream connection.
        """
        attempts = 1 + self.policy.retries
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self.client.session.request(
                    method, url, data=body, headers=headers, timeout=self._timeout
                )
            except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
                if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
                    raise self._timeout_error(url) from exc
                if last or not isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
                    raise self._unreachable(url, exc) from exc
                await asyncio.sleep(self._backoff(attempt, None))
                continue
            if response.status >= 400:
                try:
                    payload = await response.read()
                finally:
                    response.release()
                if response.status in RETRY_STATUSES and not last:
                    await asyncio.sleep(self._backoff(attempt, response.headers.get("Retry-After")))
                    continue
                self.check(Reply(response.status, response.headers, payload), parse_error)
            try:
                yield response
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise MalformedUpstreamError(
                    f"The {self.backend} backend's stream was cut off: {exc}", backend=self.backend
                ) from exc
            except TimeoutError as exc:
                raise self._timeout_error(url) from exc
            finally:
                response.close()
            return

    def check(self, reply: Reply, parse_error: MessageParser | None = None) -> Reply:
        """Return ``reply`` if its status is OK, else raise it as an upstream error."""
        if reply.ok:
            return reply
        message = None
        if parse_error is not None:
            try:
                message = parse_error(reply.body)
            except (msgspec.DecodeError, ValueError, TypeError):
                message = None
        if not message:
            text = reply.body[:300].decode("utf-8", "replace").strip()
            message = text or f"HTTP {reply.status}"
        status = reply.status if reply.status < 500 else 502
        if reply.status == 504:
            status = 504
        raise UpstreamStatusError(
            f"The {self.backend} backend answered {reply.status}: {message}",
            status=status,
            backend=self.backend,
            error_type=None if reply.status < 500 else "upstream_error",
            code=f"upstream_{reply.status}",
        )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            delay = _parse_retry_after(retry_after)
            if delay is not None:
                return min(delay, self.policy.retry_after_max)
        base = min(self.policy.backoff_max, self.policy.backoff_base * (2**attempt))
        return random.uniform(base / 2, base)

    def _timeout_error(self, url: str) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"The {self.backend} backend did not answer in time.", backend=self.backend
        )

    def _unreachable(self, url: str, exc: BaseException) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"The {self.backend} backend could not be reached: {type(exc).__name__}.",
            backend=self.backend,
        )


def _parse_retry_after(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _json_dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()
