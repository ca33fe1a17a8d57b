"""Prometheus metrics: what the server counts, and ``GET /metrics``.

Every metric is named ``translator_...`` with Prometheus units (``_seconds``,
``_bytes``, ``_total``). Label values come from configuration or from a
small fixed set, never from what a client sends: ``model`` is the configured
route that matched (an exact name or a ``prefix-*`` pattern), and a model no
route names is counted as ``unrouted``; ``field`` is a matrix row (a field no
row names is ``unknown``); ``route`` is the server's own path template.

One process keeps its counts in its own registry. Several worker processes
share theirs through ``prometheus_client``'s multiprocess mode: the parent
calls :func:`prepare_multiprocess` before the workers start, each worker
writes its values to files in that directory, and ``/metrics`` in any worker
adds up every worker's (a stream gauge only the live workers').
"""

from __future__ import annotations

import hmac
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
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
    multiprocess,
    values,
)
from prometheus_client.metrics import MetricWrapperBase

from .._http import Failure
from ..errors import AuthenticationError

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "Metrics",
    "metrics_handler",
    "prepare_multiprocess",
    "worker_exited",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

M = TypeVar("M", bound=MetricWrapperBase)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def prepare_multiprocess(directory: str | os.PathLike[str]) -> Path:
    """Make ``directory`` (emptied) the place every worker writes its metrics to.

    Call it in the parent before the workers start: it sets
    ``PROMETHEUS_MULTIPROC_DIR``, which the workers inherit.
    """
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    _multiprocess()
    return path


def worker_exited(pid: int) -> None:
    """Forget the live gauges of the worker ``pid`` (its counters keep counting)."""
    if _multiprocess():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _multiprocess() -> bool:
    """Whether values go to the shared directory; switches value storage over
    when the variable was set after ``prometheus_client`` was imported."""
    if not os.environ.get(MULTIPROC_ENV):
        return False
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return True


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
        self.multiprocess = _multiprocess()
        self.registry = registry = CollectorRegistry()
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
        """The text exposition: this process's registry, or every worker's."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        path = os.environ[MULTIPROC_ENV]
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


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
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    handle.public = True  # type: ignore[attr-defined]  # not behind the API keys
    return handle
