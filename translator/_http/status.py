"""What an upstream's reply status means: its error for the client, and whether
another attempt may be made.

A 4xx keeps its status, except 401 and 403: the upstream refused the
translator's own credentials, which is a 502 with code :data:`UPSTREAM_AUTH_CODE`
(so that a client does not take it for a problem with its own key). 503 and
504 keep their status; any other 5xx, and a redirect (never followed), is a
502. An upstream's own error detail (message, type, param, code) is passed
through, without the credentials the translator sent. 429 and 503 are tried
again for any request (the upstream did not process it), 502 and 504 only for
an idempotent one; the client is told the upstream's ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping

import msgspec

from ..errors import UpstreamStatusError
from .redact import Redactor

__all__ = [
    "RETRIED_ALWAYS",
    "RETRIED_IF_IDEMPOTENT",
    "UPSTREAM_AUTH_CODE",
    "MessageParser",
    "Reply",
    "UpstreamDetail",
    "check",
    "parse_retry_after",
    "retried",
    "status_error",
]

log = logging.getLogger("translator.http")

RETRIED_ALWAYS = frozenset({429, 503})
"""Statuses retried for every request: the upstream says it did not process it."""
RETRIED_IF_IDEMPOTENT = frozenset({502, 504})
"""Statuses retried only for an idempotent request: the upstream may have acted on it."""
UPSTREAM_AUTH_CODE = "upstream_authentication_failed"
"""The ``code`` of the 502 for an upstream that refused the translator's credentials."""

_KEPT_5XX = frozenset({503, 504})
"""Upstream 5xx statuses a client should see as they are; any other 5xx is a 502."""
_CREDENTIALS_REFUSED = frozenset({401, 403})
"""Upstream statuses that mean the translator's own credentials were refused."""


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


def check(
    reply: Reply, backend: str, redactor: Redactor, parse_error: MessageParser | None = None
) -> Reply:
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
            f"The {backend} backend answered {reply.status}, redirecting to {where}; "
            "redirects are not followed: check the backend's base_url.",
            status=502,
            backend=backend,
            error_type="upstream_error",
            code=f"upstream_{reply.status}",
        )
    error = status_error(reply.status, reply.body, backend, redactor, parse_error)
    if reply.status in RETRIED_ALWAYS:  # the client is told how long to wait, if known
        wait = parse_retry_after(reply.headers.get("Retry-After") or "")
        error.retry_after = None if wait is None else math.ceil(wait)
    raise error


def status_error(
    status: int,
    body: bytes,
    backend: str,
    redactor: Redactor,
    parse_error: MessageParser | None = None,
) -> UpstreamStatusError:
    """The error for an upstream's error ``status`` with its ``body``."""
    found: str | UpstreamDetail | None = None
    if parse_error is not None:
        try:
            found = parse_error(body)
        except (msgspec.DecodeError, ValueError, TypeError):
            found = None
    if status in _CREDENTIALS_REFUSED:
        return _credentials_refused(status, found, body, backend, redactor)
    shown = status if 400 <= status < 500 or status in _KEPT_5XX else 502
    if isinstance(found, UpstreamDetail):
        return UpstreamStatusError(
            redactor.redact(found.message),
            status=shown,
            backend=backend,
            error_type=found.type or (None if shown < 500 else "upstream_error"),
            param=found.param,
            code=found.code,
            upstream_status=status,
        )
    message = found or body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return UpstreamStatusError(
        f"The {backend} backend answered {status}: {redactor.redact(message)}",
        status=shown,
        backend=backend,
        error_type=None if shown < 500 else "upstream_error",
        code=f"upstream_{status}",
        upstream_status=status,
    )


def _credentials_refused(
    status: int, found: str | UpstreamDetail | None, body: bytes, backend: str, redactor: Redactor
) -> UpstreamStatusError:
    """The 502 for an upstream's 401 or 403: the translator's key, not the client's."""
    said = found.message if isinstance(found, UpstreamDetail) else found
    said = said or body[:300].decode("utf-8", "replace").strip() or "no reason given"
    log.warning(
        "%s: the backend refused the configured credentials (HTTP %d): %s",
        backend,
        status,
        redactor.redact(said, tokens=True),
    )
    return UpstreamStatusError(
        f"The {backend} backend refused the translator's credentials (HTTP {status}): "
        "its configured API key is missing, wrong or not allowed to do this. "
        "The API key sent to the translator is not at fault.",
        status=502,
        backend=backend,
        error_type="upstream_error",
        code=UPSTREAM_AUTH_CODE,
        upstream_status=status,
    )


def retried(status: int, idempotent: bool) -> bool:
    """Whether an attempt answered ``status`` is tried again."""
    return status in RETRIED_ALWAYS or (idempotent and status in RETRIED_IF_IDEMPOTENT)


def parse_retry_after(value: str) -> float | None:
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
