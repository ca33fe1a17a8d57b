"""What a failed attempt means: the error for the client, and whether another
attempt is safe.

A timeout is a 504, an unreachable upstream a 502, a reply that is not HTTP a
502. A connection that could not be opened sent nothing, so any request may be
tried again; one lost after the request went out (a reset, a server that hung
up) may have been acted on, so only an idempotent request is; nothing is tried
again after a read timeout (the upstream may be working on it).
"""

from __future__ import annotations

import logging

import aiohttp

from ..errors import (
    MalformedUpstreamError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["LOST_AFTER_SENDING", "timeout_error", "transport_error", "unreachable"]

log = logging.getLogger("translator.http")

LOST_AFTER_SENDING = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
)
"""A connection lost once the request may have gone out (checked after connect failures)."""


def transport_error(
    exc: BaseException, idempotent: bool, backend: str
) -> tuple[UpstreamError, bool]:
    """The error for a failed attempt, and whether another attempt is safe.

    A connection that could not be opened sent nothing, so any request may
    be tried again; one lost after the request went out (a reset, a server
    that hung up) may have been acted on, so only an idempotent request is.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return timeout_error(backend), True  # nothing was sent yet
    if isinstance(exc, TimeoutError):
        return timeout_error(backend), False
    if isinstance(exc, aiohttp.ClientSSLError):
        return unreachable(exc, backend), False
    if isinstance(exc, aiohttp.ClientConnectorError):
        return unreachable(exc, backend), True  # nothing was sent yet
    if isinstance(exc, LOST_AFTER_SENDING):
        return unreachable(exc, backend), idempotent
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        log.debug("%s: a reply that is not valid HTTP: %r", backend, exc)
        error = MalformedUpstreamError(
            f"The {backend} backend sent a reply that is not valid HTTP ({type(exc).__name__}).",
            backend=backend,
        )
        return error, False
    return unreachable(exc, backend), False


def timeout_error(backend: str) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(f"The {backend} backend did not answer in time.", backend=backend)


def unreachable(exc: BaseException, backend: str) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"The {backend} backend could not be reached: {type(exc).__name__}.",
        backend=backend,
    )
