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

What kind of failure an upstream error is (:func:`failure_of`: ``timeout``,
``unavailable``, ``5xx``, ...) is one vocabulary for the metrics, the retry
reasons and routing's ``fallback_on``.

Each attempt, and each retry with its reason, is reported to the request's
watcher (:mod:`translator._telemetry`) with the URL stripped of user info and
credentials; the trace headers a watcher gives (``traceparent``) go with the
attempt.

Upstream words that reach a log or a client never carry the credentials the
translator sent: each :class:`BoundClient` remembers the values of the
credential headers and query parameters it sends (``Authorization``,
``api-key``, ``key``, ...) and blanks them out of an upstream's message;
a log line also loses anything that looks like a token (``Bearer ...``,
``sk-...``).
"""

from .client import DEADLINE, IDEMPOTENT_METHODS, BoundClient, HttpClient, HttpPolicy
from .failures import Failure, failure_of
from .status import (
    RETRIED_ALWAYS,
    RETRIED_IF_IDEMPOTENT,
    UPSTREAM_AUTH_CODE,
    MessageParser,
    Reply,
    UpstreamDetail,
)

__all__ = [
    "DEADLINE",
    "IDEMPOTENT_METHODS",
    "RETRIED_ALWAYS",
    "RETRIED_IF_IDEMPOTENT",
    "UPSTREAM_AUTH_CODE",
    "BoundClient",
    "Failure",
    "HttpClient",
    "HttpPolicy",
    "MessageParser",
    "Reply",
    "UpstreamDetail",
    "failure_of",
]
