"""Watching requests: one :class:`RequestWatch` per request feeds the metrics, the
trace and the access log.

The edge middleware opens a watch when a request arrives and sets it as the
library's :data:`~translator._telemetry.WATCH`, so that the matrix, the HTTP
client, the stores and the media fetcher report to it; the chat handler adds
what it learns (route, usage, time to first token). When the answer has gone
out, :meth:`Observer.finish` counts it, ends its span and writes its access
log line.

Nothing here holds message content: the access log and metrics carry ids,
names, numbers and matrix field names; content reaches a span only when the
configuration asks for it *and* the request allows logging.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from aiohttp import web

from .._compat import Report, Treatment
from .._http import failure_of
from .._model import ChatChunk, ChatRequest, ChatResponse, Usage
from .._telemetry import WATCH
from .._tokens import estimate_tokens_of_length
from ..errors import TranslatorError, UnsupportedFieldError, UpstreamError
from ._logs import ACCESS_LOGGER, log_event
from ._metrics import Metrics

if TYPE_CHECKING:
    from contextvars import Token

__all__ = [
    "ACCESS_LOG",
    "UNROUTED",
    "Exchange",
    "Observer",
    "RequestWatch",
    "Tracer",
    "route_label",
]

ACCESS_LOG = logging.getLogger(ACCESS_LOGGER)
"""One ``request`` event a request (see README, "Access log")."""

_UNMATCHED = "unmatched"  # the route label of a path no route serves
UNROUTED = "unrouted"
"""The ``model`` label of a request for a model no route names (the default backend's)."""


def route_label(pattern: str) -> str:
    """The ``model`` label of the route ``pattern`` matched: its exact name or
    ``prefix-*``; the catch-all (``*``, the default backend) is :data:`UNROUTED`.
    A label from configuration, which no client can make up."""
    return UNROUTED if pattern == "*" else pattern


Span = Any
"""An OpenTelemetry span (typed loosely: OpenTelemetry is optional)."""


class Tracer(Protocol):
    """What a watch asks of tracing (:class:`~.tracing.Tracing`, imported only when on)."""

    content: bool

    def request(self, request: web.Request, route: str) -> Span: ...
    def routed(self, span: Span, model: str) -> None: ...
    def matrix(self, parent: Span, backend: str, started_ns: int, report: object) -> None: ...
    def store(
        self,
        parent: Span,
        store: str,
        operation: str,
        started_ns: int,
        error: BaseException | None,
    ) -> None: ...
    def attempt(
        self, parent: Span, method: str, url: str, number: int
    ) -> tuple[Span, Mapping[str, str]]: ...
    def attempt_done(self, span: Span, status: int | None, error: BaseException | None) -> None: ...
    def finish(self, span: Span, watch: RequestWatch, status: int, allow_logging: bool) -> None: ...


class Exchange:
    """What the edge knows of one request: its id, and what the handler found (for the log)."""

    __slots__ = (
        "allow_logging",
        "backend",
        "close_connection",
        "ignored",
        "model",
        "preparing",
        "request_id",
        "scope",
        "stream",
        "watch",
    )

    def __init__(self, request_id: str, watch: RequestWatch | None = None) -> None:
        self.request_id = request_id
        self.scope: str | None = None
        """The caller's scope (its sessions and files): derived from its API key, when
        keys are asked for."""
        self.allow_logging = True
        self.model: str | None = None
        self.backend: str | None = None
        self.stream = False
        self.ignored: str | None = None
        self.close_connection = False
        """Set when the body could not be read: the connection is closed after the answer."""
        self.preparing = False
        """Set once a response to this request has begun to be prepared."""
        self.watch = watch
        """Metrics, trace and access log of the request."""


class RequestWatch:
    """What one request did, gathered as it runs (a :class:`~translator._telemetry.Watcher`)."""

    __slots__ = (
        "_token",
        "backend",
        "content",
        "counted",
        "error",
        "finish_reasons",
        "first_token",
        "model",
        "observer",
        "report",
        "response_model",
        "retries",
        "span",
        "started",
        "started_ns",
        "streamed_chars",
        "usage",
    )

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.started = time.perf_counter()
        self.started_ns = time.time_ns()
        self.model = UNROUTED
        """The ``model`` label: the configured route that matched."""
        self.backend = ""
        self.first_token: float | None = None
        self.usage: Usage | None = None
        self.streamed_chars = 0
        """Text streamed, for an estimate of the tokens out when no usage comes."""
        self.retries = 0
        self.report: Report | None = None
        self.error: BaseException | None = None
        self.counted: UpstreamError | None = None
        """The last upstream failure counted (each is counted once)."""
        self.finish_reasons: list[str] = []
        self.response_model: str | None = None
        self.span: Span | None = None
        self.content: list[tuple[str, str]] = []
        """``(event, JSON)`` content for the span, kept only when tracing content is on."""
        self._token: Token[Any] | None = None

    # -- what the chat handler tells ------------------------------------------

    def routed(self, model: str, label: str) -> None:
        """The request for ``model`` takes the route labelled ``label``."""
        self.model = label
        tracing = self.observer.tracing
        if tracing is not None and self.span is not None:
            tracing.routed(self.span, model)

    @property
    def keeps_content(self) -> bool:
        """Whether content is kept for the span (tracing with ``trace_content`` on)."""
        tracing = self.observer.tracing
        return self.span is not None and tracing is not None and tracing.content

    def prompt(self, request: ChatRequest) -> None:
        """Keep the request's messages for the span (see :attr:`keeps_content`)."""
        self.content.append(("gen_ai.content.prompt", _json(request.messages)))

    def answered(self, backend: str, response: ChatResponse) -> None:
        """A whole answer from ``backend``: its usage, model and finish reasons."""
        self.backend = backend
        if response.usage is not None:
            self.usage = response.usage
        self.response_model = response.model
        self.finish_reasons = [c.finish_reason for c in response.choices if c.finish_reason]
        if self.content:
            messages = [c.message for c in response.choices]
            self.content.append(("gen_ai.content.completion", _json(messages)))

    def stream_started(self, backend: str) -> None:
        """A stream from ``backend`` has begun: it counts as in progress until it ends."""
        self.backend = backend
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.streams(self.backend).inc()

    def stream_ended(self) -> None:
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.streams(self.backend).dec()

    def chunk(self, chunk: ChatChunk) -> None:
        """A streamed chunk (the first one's arrival is the time to first token)."""
        if self.first_token is None:
            self.first_token = time.perf_counter() - self.started
            self.response_model = chunk.model
        if isinstance(chunk.usage, Usage):
            self.usage = chunk.usage
        for choice in chunk.choices:
            content = choice.delta.content
            if content:
                self.streamed_chars += len(content)
            if choice.finish_reason is not None:
                self.finish_reasons.append(choice.finish_reason)

    def settle_usage(self) -> None:
        """For a stream that reported no usage: its tokens out, estimated from its text."""
        if self.usage is None and self.streamed_chars:
            tokens = estimate_tokens_of_length(self.streamed_chars)
            self.usage = Usage.of(0, tokens)
            self.usage.estimated = True

    # -- what the library reports (telemetry.Watcher) ----------------------------

    def matrix_applied(self, backend: str, started_ns: int, report: object) -> None:
        self.backend = backend  # the backend being tried, until one answers
        if isinstance(report, Report):
            self.report = report
        tracing = self.observer.tracing
        if tracing is not None and self.span is not None:
            tracing.matrix(self.span, backend, started_ns, report)

    def upstream_attempt(self, backend: str, method: str, url: str, number: int) -> _Attempt:
        return _Attempt(self, backend, method, url, number)

    def backend_failed(self, backend: str, error: BaseException) -> None:
        if isinstance(error, UpstreamError):
            self._count_failure(backend, error)

    def _count_failure(self, backend: str, error: UpstreamError) -> None:
        """Count ``error`` once, whether the route moved on from it or it reached the client."""
        if error is self.counted:
            return
        self.counted = error
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.upstream_errors(backend, failure_of(error)).inc()

    def upstream_retry(self, backend: str, reason: str) -> None:
        self.retries += 1
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.upstream_retries(backend, reason).inc()

    def store_operation(
        self, store: str, operation: str, started_ns: int, error: BaseException | None
    ) -> None:
        metrics = self.observer.metrics
        if metrics is not None:
            outcome = "ok" if error is None else "error"
            metrics.store_operations(store, operation, outcome).inc()
        tracing = self.observer.tracing
        if tracing is not None and self.span is not None:
            tracing.store(self.span, store, operation, started_ns, error)

    def media_fetched(self, nbytes: int) -> None:
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.fetched_bytes.inc(nbytes)

    def media_refused(self, reason: str) -> None:
        metrics = self.observer.metrics
        if metrics is not None:
            metrics.fetch_refusals(reason).inc()


class _Attempt:
    """One watched upstream attempt: its duration, and its span when tracing."""

    __slots__ = ("backend", "headers", "span", "started", "watch")

    def __init__(self, watch: RequestWatch, backend: str, method: str, url: str, number: int):
        self.watch = watch
        self.backend = backend
        self.started = time.perf_counter()
        tracing = watch.observer.tracing
        self.span: Span | None = None
        self.headers: Mapping[str, str] | None = None
        if tracing is not None and watch.span is not None:
            self.span, self.headers = tracing.attempt(watch.span, method, url, number)

    def finished(self, status: int) -> None:
        self._end(status, None)

    def failed(self, error: BaseException) -> None:
        self._end(None, error)

    def _end(self, status: int | None, error: BaseException | None) -> None:
        metrics = self.watch.observer.metrics
        if metrics is not None:
            seconds = time.perf_counter() - self.started
            metrics.upstream_duration(self.backend).observe(seconds)
        tracing = self.watch.observer.tracing
        if tracing is not None and self.span is not None:
            tracing.attempt_done(self.span, status, error)


class Observer:
    """The app's metrics, tracing and access log, as each request uses them."""

    def __init__(
        self,
        *,
        metrics: Metrics | None,
        tracing: Tracer | None,
        access_log: bool,
    ) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.access_log = access_log

    def start(self, request: web.Request) -> RequestWatch:
        """Watch ``request`` (the library's reports go to the watch from now on)."""
        watch = RequestWatch(self)
        if self.tracing is not None:
            watch.span = self.tracing.request(request, _route(request))
        watch._token = WATCH.set(watch)
        return watch

    def finish(
        self,
        watch: RequestWatch,
        request: web.Request,
        exchange: Exchange,
        status: int,
    ) -> None:
        """Count the answered request, end its span, and log it."""
        if watch._token is not None:
            WATCH.reset(watch._token)
        watch.settle_usage()
        seconds = time.perf_counter() - watch.started
        route = _route(request)
        error = watch.error
        backend = watch.backend or getattr(error, "backend", None) or ""
        if self.metrics is not None:
            self._count(watch, route, backend, status, seconds)
        if watch.span is not None and self.tracing is not None:
            self.tracing.finish(watch.span, watch, status, exchange.allow_logging)
        if self.access_log:
            _log_access(watch, exchange, request, route, status, seconds)

    def _count(
        self, watch: RequestWatch, route: str, backend: str, status: int, seconds: float
    ) -> None:
        metrics = self.metrics
        assert metrics is not None
        metrics.request_done(route, watch.model, backend, status, seconds)
        error = watch.error
        if isinstance(error, UpstreamError):
            watch._count_failure(error.backend or backend, error)
        elif isinstance(error, UnsupportedFieldError) and (error.backend or backend):
            rejected_by = error.backend or backend
            metrics.matrix_rejections(rejected_by, error.field or "unknown").inc()
        report = watch.report
        if report is not None and report.actions:
            for action in report.actions:
                kind = (
                    "emulated"
                    if action.treatment is Treatment.EMULATED
                    else "relaxed"
                    if action.relaxed
                    else "ignored"
                )
                metrics.matrix_actions(report.backend, action.field, kind).inc()
        if watch.first_token is not None:
            metrics.first_token(backend, watch.model).observe(watch.first_token)
        usage = watch.usage
        if usage is not None:
            source = "estimated" if usage.estimated is True else "reported"
            if usage.prompt_tokens:
                metrics.tokens(backend, watch.model, "input", source).inc(usage.prompt_tokens)
            if usage.completion_tokens:
                metrics.tokens(backend, watch.model, "output", source).inc(usage.completion_tokens)


def _route(request: web.Request) -> str:
    """The route's own path template (never the client's path)."""
    resource = request.match_info.route.resource
    return _UNMATCHED if resource is None else resource.canonical


def _log_access(
    watch: RequestWatch,
    exchange: Exchange,
    request: web.Request,
    route: str,
    status: int,
    seconds: float,
) -> None:
    if not ACCESS_LOG.isEnabledFor(logging.INFO):
        return
    report = watch.report
    usage = watch.usage
    log_event(
        ACCESS_LOG,
        logging.INFO,
        "request",
        request_id=exchange.request_id,
        key=exchange.scope,
        method=request.method,
        route=route,
        path=request.path,
        status=status,
        ms=round(seconds * 1000, 1),
        model=exchange.model,
        route_model=watch.model if exchange.model is not None else None,
        backend=exchange.backend,
        stream=exchange.stream or None,
        ttft_ms=None if watch.first_token is None else round(watch.first_token * 1000, 1),
        tokens_in=usage.prompt_tokens or None if usage is not None else None,
        tokens_out=usage.completion_tokens if usage is not None else None,
        tokens_estimated=True if usage is not None and usage.estimated is True else None,
        retries=watch.retries or None,
        ignored=", ".join(report.dropped) or None if report is not None else exchange.ignored,
        emulated=", ".join(report.emulated) or None if report is not None else None,
        error=_error_code(watch.error),
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _error_code(error: BaseException | None) -> str | None:
    if isinstance(error, TranslatorError):
        return error.code or error.error_type
    return None if error is None else "server_error"
