"""What kind of failure an upstream error is: one vocabulary for everything that asks.

The ``kind`` label of ``translator_upstream_errors_total``, the reason of a
retry after a transport failure, a route's ``fallback_on`` and the backends'
health all read :func:`failure_of`:

=================  ==============================================================
kind               the backend ...
=================  ==============================================================
``timeout``        did not answer in time
``unavailable``    could not be reached, or hung up
``malformed``      answered what could not be understood
``auth``           refused the translator's own credentials (its 401 or 403)
``rate_limited``   asked to slow down (its 429)
``5xx``            answered a server error (or a redirect, which is not followed)
``4xx``            refused the request (any other 4xx): the client's error
``other``          failed in a way of its own (a reply over ``max_reply_bytes``,
                   an error reported inside its reply)
=================  ==============================================================

Every kind but ``4xx`` is the backend's fault (:attr:`Failure.blames_backend`):
it counts against the backend's health. A ``4xx`` says nothing of the backend.
"""

from __future__ import annotations

import enum
from typing import overload

from ..errors import (
    MalformedUpstreamError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamUnavailableError,
)
from .status import UPSTREAM_AUTH_CODE

__all__ = ["Failure", "failure_of"]


class Failure(enum.StrEnum):
    """A kind of upstream failure (see the module docstring)."""

    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    MALFORMED = "malformed"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "5xx"
    REFUSED = "4xx"
    OTHER = "other"

    @property
    def blames_backend(self) -> bool:
        """Whether the failure is the backend's (a ``4xx`` is the client's)."""
        return self is not Failure.REFUSED


@overload
def failure_of(error: UpstreamError) -> Failure: ...
@overload
def failure_of(error: BaseException) -> Failure | None: ...
def failure_of(error: BaseException) -> Failure | None:
    """The kind of upstream failure ``error`` is; None for one that is not an
    upstream's (the client's request refused before any call, a bug)."""
    if isinstance(error, TimeoutError):  # UpstreamTimeoutError included
        return Failure.TIMEOUT
    if not isinstance(error, UpstreamError):
        return None
    if isinstance(error, UpstreamUnavailableError):
        return Failure.UNAVAILABLE
    if isinstance(error, MalformedUpstreamError):
        return Failure.MALFORMED
    if isinstance(error, UpstreamStatusError):
        if error.code == UPSTREAM_AUTH_CODE:
            return Failure.AUTH
        if error.upstream_status == 429:
            return Failure.RATE_LIMITED
        if error.status >= 500 or error.upstream_status >= 500:
            return Failure.SERVER_ERROR
        return Failure.REFUSED
    return Failure.OTHER if error.status >= 500 else Failure.REFUSED
