"""The aiohttp application: :func:`create_app` builds it once, ready to mount.

Every route is served under ``/v1`` and again under ``/v1/openai`` (the base
URL OpenAI SDK users are given). Everything a request needs (the translator,
the router, pre-encoded static bodies) is built here, not per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import msgspec
import pluggy
from aiohttp import web

from .._backend import BackendContext
from .._core import Translator
from .._routing import Dispatcher, RateLimiter, RouteTable, listed_models
from ..config import (
    Config,
    ConfigError,
    FetchSettings,
    Observability,
    ServerSettings,
    default_data_dir,
)
from ..errors import ModelNotFoundError
from ..stores import FileStore, QuotaFileStore
from ..stores._settings import open_stores
from ._chat import ChatHandler
from ._files import FileHandlers
from ._health import READINESS, Readiness
from ._metrics import Metrics, metrics_handler
from ._middleware import Handler, edge_middleware, public, safe_headers
from ._observe import Observer

__all__ = ["DISPATCHER", "PREFIXES", "READINESS", "SETTINGS", "TRANSLATOR", "create_app"]

log = logging.getLogger("translator.server")

PREFIXES = ("/v1", "/v1/openai")
TRANSLATOR = web.AppKey("translator", Translator)
"""The app's :class:`Translator`, for embedders: ``app[TRANSLATOR]``."""
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
"""The app's :class:`~translator._routing.Dispatcher`: its ``health.snapshot()`` is every
backend's health and load."""
SETTINGS = web.AppKey("server_settings", ServerSettings)
"""The ``[server]`` settings the app was built with (:func:`~.runner.serving` reads the
HTTP parser's limits from them)."""

_encoder = msgspec.json.Encoder()


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"


def create_app(
    config: Config | None = None,
    *,
    translator: Translator | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
    files: FileStore | None = None,
    environ: Mapping[str, str] | None = None,
    tracer_provider: Any = None,
) -> web.Application:
    """The server for ``config`` (default: every model through ``echo``).

    Pass ``translator`` to serve backends built elsewhere (the caller then
    closes it; its context is given the file store if it has none); otherwise
    the backends are built from ``config`` through the plugins of
    ``plugin_manager`` and closed when the app shuts down. The stores are
    those of ``config.stores`` (local and durable by default, in
    ``server.data_dir``); ``files`` replaces the file store.
    ``tracer_provider`` (an OpenTelemetry ``TracerProvider``) turns traces on
    and receives them; else ``server.observability.traces`` uses the global one.
    Raises :class:`~translator.config.ConfigError` for a configuration that
    cannot be served.
    """
    config = config or Config.default()
    settings = config.server
    api_keys = settings.resolve_api_keys(environ)
    try:
        stores = open_stores(
            config.stores, settings.data_dir or default_data_dir(), environ=environ
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    store = files or stores.files
    if api_keys:  # each key its own share of the store
        limits = settings.limits
        max_bytes, max_files = limits.max_file_bytes_per_key, limits.max_files_per_key
        if not store.enforce_owner_quota(max_bytes=max_bytes, max_files=max_files):
            store = QuotaFileStore(store, max_bytes=max_bytes, max_files=max_files)
    owned = translator is None
    if translator is not None and translator.context.files is None:
        translator.context.files = store  # so that uploaded ids reach its backends
    if translator is None:
        config.check()
        context = BackendContext(files=store, fetcher=_fetcher(config.fetch), cache=stores.cache)
        try:
            translator = Translator.from_settings(
                config.backends,
                plugin_manager=plugin_manager,
                context=context,
                sessions=stores.sessions,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    router = _router(config, list(translator.backends))
    dispatcher = Dispatcher(translator, router, config.routing)
    limiter = None
    if _limited(config):
        try:
            limiter = RateLimiter.configured(config.rate_limits, config.stores, environ=environ)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    observed = settings.observability
    metrics_key = observed.resolve_metrics_key(environ)
    observer = _observer(observed, tracer_provider)
    app = web.Application(middlewares=[edge_middleware(api_keys, observer)])
    app.on_response_prepare.append(safe_headers)
    app[TRANSLATOR] = translator
    app[DISPATCHER] = dispatcher
    app[SETTINGS] = settings
    readiness = app[READINESS] = Readiness(
        {"files": store, "sessions": translator.sessions},
        _probes(config, router) if observed.probe_backends else (),
        dispatcher.health,
    )
    if observer.metrics is not None:
        dispatcher.health.listener = observer.metrics.backend_health
        for name in router.backends:
            observer.metrics.backend_health(name, 0, False)

    chat = ChatHandler(dispatcher, settings.limits, settings.compat, limiter)
    file_routes = FileHandlers(store, settings.limits.max_file_bytes)
    models = _models_handlers(router, listed_models(config.backends, router))
    for prefix in PREFIXES:
        app.router.add_post(f"{prefix}/chat/completions", chat.handle)
        app.router.add_get(f"{prefix}/models", models[0], allow_head=False)
        app.router.add_get(f"{prefix}/models/{{model:.+}}", models[1], allow_head=False)
        app.router.add_post(f"{prefix}/files", file_routes.create)
        app.router.add_get(f"{prefix}/files", file_routes.list, allow_head=False)
        app.router.add_get(f"{prefix}/files/{{file_id}}", file_routes.retrieve, allow_head=False)
        app.router.add_delete(f"{prefix}/files/{{file_id}}", file_routes.delete)
        app.router.add_get(
            f"{prefix}/files/{{file_id}}/content", file_routes.content, allow_head=False
        )
        app.router.add_get(f"{prefix}/health", health)
    app.router.add_get("/health", health)

    @public
    async def ready(request: web.Request) -> web.Response:
        """Whether this process can serve (see :mod:`.health`), without an API key."""
        return await readiness.answer()

    app.router.add_get("/ready", ready)
    if observer.metrics is not None:
        app.router.add_get("/metrics", metrics_handler(observer.metrics, metrics_key))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        log.info("serving backends: %s", ", ".join(router.backends))
        for name in router.unreached():
            log.warning("backend %s: no route and no default_backend leads to it", name)
        yield
        readiness.drain()
        if limiter is not None:
            await limiter.aclose()
        if owned:
            await translator.aclose()
            fetcher = translator.context.fetcher
            closer = getattr(fetcher, "aclose", None)
            if closer is not None:
                await closer()
        await stores.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app


_HEALTH = _encoder.encode({"status": "ok"})


@public
async def health(request: web.Request) -> web.Response:
    """``{"status": "ok"}``, without an API key: for probes and SDKs checking the server."""
    return web.Response(body=_HEALTH, content_type="application/json")


def _models_handlers(router: RouteTable, listed: list[tuple[str, str]]) -> tuple[Handler, Handler]:
    created = int(time.time())
    listing = _encoder.encode(ModelList([ModelCard(m, created, b) for m, b in listed]))

    async def list_models(request: web.Request) -> web.Response:
        return web.Response(body=listing, content_type="application/json")

    async def retrieve_model(request: web.Request) -> web.Response:
        model = request.match_info["model"]
        try:
            backend = router.backend_for(model)
        except ModelNotFoundError as exc:
            exc.param = None
            raise
        card = ModelCard(model, created, backend)
        return web.Response(body=_encoder.encode(card), content_type="application/json")

    return list_models, retrieve_model


def _router(config: Config, backends: list[str]) -> RouteTable:
    known = ", ".join(backends)
    for i, route in enumerate(config.routes):
        for backend in route.candidates:
            if backend not in backends:
                raise ConfigError(f"routes[{i}]: no backend named {backend!r} (serving: {known})")
    default = config.fallback_backend
    if default is not None and default not in backends:
        default = backends[0] if len(backends) == 1 else None
    return RouteTable(config.routes, backends, default)


def _limited(config: Config) -> bool:
    """Whether any rate limit is configured."""
    limits = config.rate_limits
    return (
        limits.requests_per_minute is not None
        or limits.tokens_per_minute is not None
        or any(r.requests_per_minute or r.tokens_per_minute for r in config.routes)
    )


def _observer(settings: Observability, tracer_provider: Any) -> Observer:
    metrics = Metrics() if settings.metrics else None
    tracing = None
    if settings.traces or tracer_provider is not None:
        try:
            from ._tracing import Tracing
        except ImportError as exc:
            raise ConfigError(
                "server.observability.traces needs OpenTelemetry: "
                f"pip install 'openai-translator[otel]' ({exc})"
            ) from None
        tracing = Tracing(tracer_provider, content=settings.trace_content)
    return Observer(metrics=metrics, tracing=tracing, access_log=settings.access_log != "off")


def _probes(config: Config, router: RouteTable) -> list[tuple[str, str]]:
    """``(backend, base_url)`` of each served backend that has one."""
    served = set(router.backends)
    return [
        (name, b.base_url) for name, b in config.backends.items() if b.base_url and name in served
    ]


def _fetcher(settings: FetchSettings | None) -> object:
    """The guarded media fetcher backends share, when ``[fetch]`` configures one."""
    if settings is None:
        return None
    from .._fetch import MediaFetcher

    return MediaFetcher(
        allow=settings.allow,
        max_bytes=settings.max_bytes,
        timeout=settings.timeout,
        max_redirects=settings.max_redirects,
    )
