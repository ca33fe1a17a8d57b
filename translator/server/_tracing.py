"""OpenTelemetry spans for requests, with the GenAI semantic conventions.

Imported only when ``server.observability.traces`` is on (it needs the
``otel`` extra); without it nothing of OpenTelemetry is loaded.

Each request is a SERVER span (named ``chat <route model>`` for a chat), a
child of the caller's ``traceparent`` when it sends one. Its children: the
matrix (``translator.matrix``), each session or file store call, each
upstream HTTP attempt (a CLIENT span whose context goes upstream as
``traceparent``, with the method, the URL without credentials, the status and
``http.request.resend_count``), and the stream (``translator.stream``, first
chunk to last). Spans go to the tracer provider given to
:func:`~translator.server.create_app`, else the global one (set up from the
standard ``OTEL_*`` variables by ``translator serve``).

Attributes carry names, numbers and finish reasons. Message content is added
(as ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` events) only
with ``trace_content = true`` and a request whose ``allow_logging`` is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._compat import Report, Treatment

if TYPE_CHECKING:
    from ._observe import RequestWatch

__all__ = ["Span", "Tracing", "configure_from_environment", "encode_content"]

_NAME = "translator"
_SYSTEM = "translator.backend"  # the project attribute naming the backend


class Tracing:
    """Spans for one app, from ``provider`` (default: the global tracer provider)."""

    def __init__(self, provider: trace.TracerProvider | None = None, *, content: bool = False):
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer(_NAME)
        self.content = content

    def request(self, request: web.Request, route: str) -> Span:
        """The request's span, continuing the caller's trace if it sent one."""
        parent = propagate.extract(request.headers)
        return self.tracer.start_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method},
        )

    def routed(self, span: Span, model: str) -> None:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": model})

    def matrix(self, parent: Span, backend: str, started_ns: int, report: object) -> None:
        attributes: dict[str, Any] = {_SYSTEM: backend}
        if isinstance(report, Report):
            dropped = [a.field for a in report.actions if a.treatment is not Treatment.EMULATED]
            attributes["translator.matrix.dropped"] = dropped
            attributes["translator.matrix.emulated"] = report.emulated
        span = self._child(parent, "translator.matrix", started_ns, attributes)
        span.end()

    def store(
        self,
        parent: Span,
        store: str,
        operation: str,
        started_ns: int,
        error: BaseException | None,
    ) -> None:
        attributes = {"translator.store": store, "translator.store.operation": operation}
        span = self._child(parent, f"{store} {operation}", started_ns, attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def attempt(
        self, parent: Span, method: str, url: str, number: int
    ) -> tuple[Span, Mapping[str, str]]:
        """An upstream attempt's span, and the headers that carry its context upstream."""
        span = self.tracer.start_span(
            method,
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "url.full": url,
                "http.request.resend_count": number,
            },
        )
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return span, headers

    def attempt_done(self, span: Span, status: int | None, error: BaseException | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR))
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def finish(self, span: Span, watch: RequestWatch, status: int, allow_logging: bool) -> None:
        """Name, describe and end the request's span."""
        if watch.backend:
            span.update_name(f"chat {watch.model}")
            span.set_attributes({"gen_ai.system": watch.backend, _SYSTEM: watch.backend})
        span.set_attribute("http.response.status_code", status)
        if watch.response_model is not None:
            span.set_attribute("gen_ai.response.model", watch.response_model)
        if watch.finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", watch.finish_reasons)
        usage = watch.usage
        if usage is not None:
            if usage.prompt_tokens:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if watch.retries:
            span.set_attribute("translator.retries", watch.retries)
        if watch.first_token is not None:
            stream = self._child(
                span, "translator.stream", watch.started_ns + int(watch.first_token * 1e9), {}
            )
            stream.end()
        if self.content and allow_logging:
            for event, value in watch.content:
                span.add_event(event, {event.replace("content.", ""): value})
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(status)))
        if watch.error is not None:
            span.set_attribute("error.type", type(watch.error).__name__)
        span.end()

    def _child(
        self, parent: Span, name: str, started_ns: int, attributes: Mapping[str, Any]
    ) -> Span:
        return self.tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            start_time=started_ns,
            attributes=attributes,
        )


def encode_content(value: object) -> str:
    """Content as a span event holds it: JSON text."""
    return msgspec.json.encode(value).decode()


def configure_from_environment() -> None:
    """Install an SDK tracer provider exporting as ``OTEL_TRACES_EXPORTER`` says, unless
    one is set already (``opentelemetry-instrument`` sets one)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporters() -> list[Any]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` names (entry points of installed packages)."""
    import os
    from importlib.metadata import entry_points

    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    found = {e.name: e for e in entry_points(group="opentelemetry_traces_exporter")}
    exporters = []
    for name in (n.strip() for n in names.split(",")):
        if not name or name == "none":
            continue
        entry = found.get(name)
        if entry is None:
            raise RuntimeError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides "
                f"(installed: {', '.join(sorted(found)) or 'none'})"
            )
        exporters.append(entry.load()())
    return exporters
