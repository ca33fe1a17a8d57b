"""Prometheus metrics: what the server counts, and ``GET /metrics``.

Every metric is named ``translator_...`` with Prometheus units (``_seconds``,
``_bytes``, ``_total``). Label values come from configuration or from a
small fixed set, never from what a client sends: ``model`` is the configured
route that matched (an exact name or a ``prefix-*`` pattern), and a model no
route names is counted as ``unrouted``; ``field`` is a matrix row (a field no
row names is ``unknown``); ``route`` is the server's own path template.

One process keeps its counts in its own registry. Several worker processes
share theirs through ``prometheus_client``'s multiprocess mode
(:mod:`._shared_metrics`): each worker writes its values to files in one
directory, and ``/metrics`` in any worker adds up every worker's (a stream
gauge only the live workers'). A scrape that cannot read them is a 503,
logged.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Literal, TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST as CONTENT_TYPE,
)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from .._http import Failure
from ..errors import AuthenticationError, TranslatorError
from ._logs import log_event
from ._shared_metrics import MULTIPROC_ENV, UnreadableMetrics, WorkerFiles, shared

__all__ = ["CONTENT_TYPE", "Metrics", "metrics_handler"]

log = logging.getLogger("translator.server")

M = TypeVar("M", bound=MetricWrapperBase)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Labelled(Generic[M]):
    """A metric with labels, each set of label values bound once and kept.

    ``prometheus_client`` checks and looks up the labels on every ``labels()``
    call; label values here come from a bounded set, so the bound children are
    kept (a dictionary lookup instead)."""

    __slots__ = ("_bound", "metric")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._bound: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        bound = self._bound.get(labels)
        if bound is None:
            bound = self._bound[labels] = self.metric.labels(*labels)
        return bound


class _Declare:
    """Declares the metrics of one registry: one call a metric."""

    __slots__ = ("registry",)

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> Labelled[Counter]:
        """A counter (exposed as ``name_total``)."""
        return Labelled(Counter(name, doc, labels, registry=self.registry))

    def histogram(self, name: str, doc: str, labels: Sequence[str]) -> Labelled[Histogram]:
        """A latency histogram, in seconds (:data:`_LATENCY` buckets)."""
        return Labelled(Histogram(name, doc, labels, buckets=_LATENCY, registry=self.registry))

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], workers: Literal["livesum", "livemax"]
    ) -> Labelled[Gauge]:
        """A gauge; ``workers`` is how several workers' values combine (``livesum``, ...)."""
        gauge = Gauge(name, doc, labels, multiprocess_mode=workers, registry=self.registry)
        return Labelled(gauge)


class Metrics:
    """Every metric the server keeps, registered in one registry of its own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._exposed = registry
        """What a scrape reads: this registry, or every worker's files."""
        if shared():
            self._exposed = CollectorRegistry(auto_describe=False)
            self._exposed.register(WorkerFiles(os.environ[MULTIPROC_ENV]))
        declare = _Declare(registry)
        self.requests = declare.counter(
            "translator_requests",
            "HTTP requests answered, by route, model, backend and status.",
            ["route", "model", "backend", "status"],
        )
        self.request_duration = declare.histogram(
            "translator_request_duration_seconds",
            "Time from a request's arrival to its last byte (a whole stream included).",
            ["route", "model", "backend"],
        )
        self.upstream_duration = declare.histogram(
            "translator_upstream_request_duration_seconds",
            "One upstream HTTP attempt, from sending to the status line (or its failure).",
            ["backend"],
        )
        self.first_token = declare.histogram(
            "translator_time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first chunk.",
            ["backend", "model"],
        )
        self.tokens = declare.counter(
            "translator_tokens",
            "Tokens in (prompt) and out (completion), as reported by the backend or estimated.",
            ["backend", "model", "direction", "source"],
        )
        self.upstream_errors = declare.counter(
            "translator_upstream_errors",
            f"Requests that failed at the backend, by kind: {', '.join(Failure)}.",
            ["backend", "kind"],
        )
        self.upstream_retries = declare.counter(
            "translator_upstream_retries",
            "Upstream attempts tried again, by reason (a status, or an error kind).",
            ["backend", "reason"],
        )
        self.matrix_rejections = declare.counter(
            "translator_matrix_rejections",
            "Requests a backend's compatibility matrix refused, by the field at fault.",
            ["backend", "field"],
        )
        self.matrix_actions = declare.counter(
            "translator_matrix_fields",
            "Fields the matrix dropped (ignored, relaxed) or emulated, by backend and field.",
            ["backend", "field", "action"],
        )
        self.streams = declare.gauge(
            "translator_streams_in_progress",
            "Streamed answers being sent right now.",
            ["backend"],
            workers="livesum",
        )
        self.store_operations = declare.counter(
            "translator_store_operations",
            "Store calls (sessions, files) by operation and outcome (ok, error).",
            ["store", "operation", "outcome"],
        )
        self.backend_cooled_down = declare.gauge(
            "translator_backend_cooled_down",
            "1 while routing passes a backend over after consecutive failures "
            "(until a probe request succeeds), else 0.",
            ["backend"],
            workers="livemax",
        )
        self.backend_failures = declare.gauge(
            "translator_backend_consecutive_failures",
            "A backend's failed attempts in a row (any kind of failure but 4xx).",
            ["backend"],
            workers="livemax",
        )
        self.fetched_bytes = Counter(
            "translator_media_fetched_bytes",
            "Bytes the media fetcher read from remote URLs.",
            registry=registry,
        )
        self.fetch_refusals = declare.counter(
            "translator_media_fetch_refusals",
            "Remote URLs the media fetcher refused (refused) or could not fetch (failed).",
            ["reason"],
        )

    def backend_health(self, backend: str, failures: int, cooled_down: bool) -> None:
        """A backend's routing health changed (see :class:`~translator._routing.Health`)."""
        self.backend_failures(backend).set(failures)
        self.backend_cooled_down(backend).set(1 if cooled_down else 0)

    def request_done(
        self, route: str, model: str, backend: str, status: int, seconds: float
    ) -> None:
        """Count one answered request."""
        self.requests(route, model, backend, str(status)).inc()
        self.request_duration(route, model, backend).observe(seconds)

    def render(self) -> bytes:
        """The text exposition: this process's registry, or every worker's
        (:class:`~._shared_metrics.UnreadableMetrics` when they cannot be read)."""
        return generate_latest(self._exposed)


def metrics_handler(
    metrics: Metrics, key: str | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /metrics``: open, or asking for ``Authorization: Bearer <key>`` (its own key,
    never one of the API keys; with API keys only, it stays open)."""
    expected = key.encode() if key else None

    async def handle(request: web.Request) -> web.Response:
        if expected is not None:
            scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected
            ):
                raise AuthenticationError(
                    "/metrics asks for its own key: send 'Authorization: Bearer <metrics key>'."
                )
        try:
            body = metrics.render()
        except UnreadableMetrics as exc:
            log_event(log, logging.ERROR, "metrics_unavailable", reason=str(exc))
            raise TranslatorError(
                "The metrics of the server's workers cannot be read now; the server's "
                "log says why. Try the scrape again.",
                code="metrics_unavailable",
                status=503,
            ) from None
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    handle.public = True  # type: ignore[attr-defined]  # not behind the API keys
    return handle
