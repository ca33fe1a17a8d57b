"""The server's TOML configuration, decoded into structs.

::

    default_backend = "agent"          # models no route names go here

    [server]
    host = "127.0.0.1"
    port = 8080
    api_keys_env = "TRANSLATOR_API_KEYS"   # or api_keys = ["..."]
    compat = "strict"                      # default compat mode for every backend
    data_dir = "/var/lib/translator"       # local stores: files, sessions.sqlite3
    max_field_size = 8192                  # longest header name or value (bytes)
    max_line_size = 8192                   # longest request line (bytes)
    max_header_bytes = 32768               # whole request head (bytes)
    header_timeout = 10.0                  # seconds to send a request head
    body_timeout = 10.0                    # longest pause in a request body (seconds)
    min_body_rate = 1024                   # bytes a second a body must average
    keepalive_timeout = 15.0               # idle seconds before a connection is closed
    max_connections = 1024                 # open connections; more are refused (503)

    [server.observability]             # GET /metrics, traces, /ready, the access log
    metrics = true
    metrics_key_env = "METRICS_KEY"        # unset: /metrics is open
    access_log = "json"                    # or "text", "off"

    [server.limits]
    max_body_bytes = 33554432
    max_file_bytes_per_key = 134217728     # with API keys: each key's uploads, in all
    max_files_per_key = 1000
    max_messages = 2048
    request_timeout = 600.0

    [backends.agent]                   # a translator.BackendSettings
    plugin = "vlm-agent"
    base_url = "https://agent.example.com/v1"
    api_key_env = "VLMRUN_API_KEY"

    [[routes]]
    model = "vlm-agent-*"              # a trailing * matches a prefix
    backend = "agent"                  # or backends = [...] and a strategy:
                                       # README, "Routes with several backends"

    [fetch]                            # one guarded media fetcher for every backend
    allow = ["10.0.0.0/8"]             # hosts and networks allowed although not public

    [stores]                           # a translator.stores.StoreSettings
    sessions = "redis://127.0.0.1:6379/0"  # "memory" | "local" (default) | a Redis URL
    files = "redis://127.0.0.1:6379/0"

A bad file raises :class:`ConfigError`, whose message names the file and the
key at fault.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ._backend import BackendSettings
from ._compat import Mode
from ._openai.invalid import decode_error
from ._routing.settings import HealthSettings, RateLimitSettings, Route
from .stores._settings import StoreSettings

__all__ = [
    "Config",
    "ConfigError",
    "FetchSettings",
    "Limits",
    "Observability",
    "Route",
    "ServerSettings",
    "default_data_dir",
    "load_config",
    "parse_config",
]

Positive = Annotated[int, Meta(gt=0)]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


class Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What one request may ask of the server."""

    max_body_bytes: Positive = 32 * 1024 * 1024
    """Largest JSON request body; a larger one is a 413."""
    max_file_bytes: Positive = 512 * 1024 * 1024
    """Largest file uploaded through ``/v1/files``; a larger one is a 413."""
    max_file_bytes_per_key: Positive = 128 * 1024 * 1024
    """With API keys, most bytes of uploaded files one key may keep; more is a 413."""
    max_files_per_key: Positive = 1000
    """With API keys, most uploaded files one key may keep; more is a 413."""
    max_messages: Positive = 2048
    """Most messages in one chat request; more is a 400."""
    request_timeout: Annotated[float, Meta(gt=0)] = 600.0
    """Seconds one request may take, a whole stream included; past it, a 504."""


class Observability(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[server.observability]`` table: metrics, traces, readiness, the access log."""

    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus text format) and count what requests do."""
    metrics_key: str | None = None
    """A bearer token ``/metrics`` asks for (none: open); never one of the API keys."""
    metrics_key_env: str | None = None
    """An environment variable holding ``metrics_key``."""
    traces: bool = False
    """OpenTelemetry spans for each request (needs the ``otel`` extra; ``OTEL_*`` variables)."""
    trace_content: bool = False
    """Put message content on spans, for requests whose ``allow_logging`` is true."""
    access_log: Literal["text", "json", "off"] = "text"
    """One line per request on the ``translator.access`` logger."""
    probe_backends: bool = False
    """``/ready`` also reports whether each backend's ``base_url`` answers (no chat sent)."""
    drain_seconds: Annotated[float, Meta(ge=0)] = 0.0
    """On SIGTERM, seconds ``/ready`` says ``draining`` before the server stops listening."""

    def resolve_metrics_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The token ``/metrics`` asks for, if any; an unset ``metrics_key_env`` is an error."""
        if self.metrics_key_env is None:
            return self.metrics_key
        value = (os.environ if environ is None else environ).get(self.metrics_key_env, "").strip()
        if not value:
            raise ConfigError(
                f"server.observability.metrics_key_env names {self.metrics_key_env}, "
                "which is not set; refusing to serve /metrics open"
            )
        return value


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[server]`` table."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    api_keys: list[Annotated[str, Meta(min_length=1)]] = msgspec.field(default_factory=list)
    api_keys_env: str | None = None
    """An environment variable holding the API keys, comma-separated."""
    limits: Limits = msgspec.field(default_factory=Limits)
    compat: Mode | None = None
    """The compat mode for every backend; unset, each backend's own mode holds."""
    data_dir: str | None = None
    """Where the ``local`` stores keep files and sessions; unset, :func:`default_data_dir`."""
    max_line_size: Positive = 8 * 1024
    """Longest request line (method, path and query) in bytes; longer is a 414."""
    max_field_size: Positive = 8 * 1024
    """Longest header name or value in bytes; longer is a 431."""
    max_header_bytes: Positive = 32 * 1024
    """Longest request head (request line and every header) in bytes; longer is a 431."""
    header_timeout: Annotated[float, Meta(gt=0)] = 10.0
    """Seconds from a request head's first byte to its end; slower is a 408."""
    body_timeout: Annotated[float, Meta(gt=0)] = 10.0
    """Longest pause, in seconds, while a request body arrives; longer is a 408."""
    min_body_rate: Positive = 1024
    """Bytes a second a body must average once ``body_timeout`` has passed; slower is a 408."""
    keepalive_timeout: Annotated[float, Meta(gt=0)] = 15.0
    """Seconds a connection may stay idle (before its first request, or between two)."""
    max_connections: Positive = 1024
    """Most connections open at once; one more is answered 503 and closed."""
    observability: Observability = msgspec.field(default_factory=Observability)

    def resolve_api_keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Every accepted key; an ``api_keys_env`` that is not set is an error, never open."""
        keys = list(self.api_keys)
        if self.api_keys_env is not None:
            env = os.environ if environ is None else environ
            value = env.get(self.api_keys_env)
            if value is None:
                raise ConfigError(
                    f"server.api_keys_env names {self.api_keys_env}, which is not set; "
                    "refusing to start without the API keys it should hold"
                )
            keys.extend(k.strip() for k in value.split(",") if k.strip())
            if not keys:
                raise ConfigError(f"server.api_keys_env: {self.api_keys_env} holds no keys")
        return tuple(keys)


class FetchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[fetch]`` table: how remote media URLs are fetched, for every backend.

    Without it, each backend that fetches keeps its own fetcher (configured by
    its ``options.fetch``); with it, they share this one.
    """

    allow: list[str] = msgspec.field(default_factory=list)
    """Host names and networks that may be fetched from although not public."""
    max_bytes: Positive = 20 * 1024 * 1024
    timeout: Annotated[float, Meta(gt=0)] = 30.0
    max_redirects: Annotated[int, Meta(ge=0)] = 3


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    default_backend: str | None = None
    """Where a model no route names goes; with one backend, that backend."""
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    backends: dict[str, BackendSettings] = msgspec.field(default_factory=dict)
    routes: list[Route] = msgspec.field(default_factory=list)
    routing: HealthSettings = msgspec.field(default_factory=HealthSettings)
    rate_limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    fetch: FetchSettings | None = None
    stores: StoreSettings = msgspec.field(default_factory=StoreSettings)

    @classmethod
    def default(cls, *, data_dir: str | None = None) -> Config:
        """No file: every model through the ``echo`` backend; ``echo`` is the one listed."""
        return cls(
            default_backend="echo",
            server=ServerSettings(data_dir=data_dir),
            backends={"echo": BackendSettings(plugin="echo")},
            routes=[Route("echo", "echo")],
        )

    @property
    def fallback_backend(self) -> str | None:
        """The backend for a model no route names, if any."""
        if self.default_backend is not None:
            return self.default_backend
        if len(self.backends) == 1:
            return next(iter(self.backends))
        return None

    def check(self) -> None:
        """Cross-references: every route and the default name a configured backend."""
        if not self.backends:
            raise ConfigError("no backends are configured; add a [backends.NAME] table")
        known = ", ".join(sorted(self.backends))
        if self.default_backend is not None and self.default_backend not in self.backends:
            raise ConfigError(
                f"default_backend: no backend named {self.default_backend!r} (configured: {known})"
            )
        try:
            self.stores.check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for i, route in enumerate(self.routes):
            problem = route.problem()
            if problem is not None:
                raise ConfigError(f"routes[{i}].{problem}")
            key = "backends" if route.backends else "backend"
            for backend in route.candidates:
                if backend not in self.backends:
                    raise ConfigError(
                        f"routes[{i}].{key}: no backend named {backend!r} (configured: {known})"
                    )


class _File(Config, kw_only=True, forbid_unknown_fields=True):
    """The file as read: each backend table is decoded on its own, to name it in errors."""

    backends: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)  # type: ignore[assignment]


def parse_config(text: str | bytes, *, source: str = "<config>") -> Config:
    """Decode and check a TOML configuration; :class:`ConfigError` names the bad key."""
    if not isinstance(text, str):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            why = f"not valid TOML: not UTF-8 text (byte {exc.start})"
            raise ConfigError(f"{source}: {why}") from None
    try:
        raw = msgspec.toml.decode(text, type=_File)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(exc, _File)}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    backends: dict[str, BackendSettings] = {}
    for name, table in raw.backends.items():
        try:
            backends[name] = msgspec.convert(table, BackendSettings)
        except msgspec.ValidationError as exc:
            why = _explain(exc, BackendSettings, f"backends.{name}.")
            raise ConfigError(f"{source}: {why}") from None
    config = Config(
        default_backend=raw.default_backend,
        server=raw.server,
        backends=backends,
        routes=raw.routes,
        routing=raw.routing,
        rate_limits=raw.rate_limits,
        fetch=raw.fetch,
        stores=raw.stores,
    )
    if not config.backends:
        defaults = Config.default()
        config.backends = defaults.backends
        if config.default_backend is None:
            config.default_backend = defaults.default_backend
        if not config.routes:
            config.routes = defaults.routes
    try:
        config.check()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the TOML configuration file at ``path``."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def default_data_dir() -> str:
    """Where the ``local`` stores keep files and sessions when no configuration says."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(base, "translator", "files")


def _explain(exc: msgspec.ValidationError, root: Any, prefix: str = "") -> str:
    """A validation failure in this project's words, naming the key at fault.

    The wording is the one request errors get (:func:`~translator._openai.decode_error`),
    never msgspec's own; ``prefix`` is put before the key (``backends.NAME.``).
    """
    error = decode_error(exc, None, root)
    key = prefix + (error.param or "")
    if error.code == "unknown_parameter":
        return f"{key}: unknown key"
    if error.code == "missing_required_parameter":
        return f"{key}: required key is missing"
    message = error.message
    if error.param:
        message = message.replace(f"'{error.param}'", f"'{key}'")
    return message if not key or f"'{key}'" in message else f"{key}: {message}"
