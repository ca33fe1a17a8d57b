"""The backend seam: what a backend plugin implements, and what it is given.

A backend is small: a name, its compatibility matrix, ``complete``, ``stream``
(when its matrix supports it) and ``aclose``, plus the two pure halves of its translation
(``encode_request``, ``decode_response``) that work without any I/O, for
embedders and benchmarks.

Whom a request is answered for travels with it: the pipeline records the
caller's scope (``Translator.complete(..., scope=...)``; the server's, one
per API key) on the request it hands the backend, and the backend reads it
with :func:`caller_scope` and passes it on, to :meth:`FileSource.read` and to
any cache it keeps per caller. No scope is ambient.
"""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import msgspec

from ._compat import Matrix, Mode, Treatment
from ._model import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from ._http import BoundClient, HttpClient, HttpPolicy

_Options = TypeVar("_Options")

__all__ = [
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendSettings",
    "FileSource",
    "SharedCache",
    "caller_scope",
    "convert_options",
    "set_caller_scope",
]

_SCOPE = "caller_scope"
"""The key of the caller's scope in a request's ``__dict__`` (beside the wire fields)."""


def caller_scope(request: ChatRequest) -> str | None:
    """The scope of the caller ``request`` is answered for (the server's: one per API
    key), or None: a caller who sees every uploaded file."""
    scope: str | None = request.__dict__.get(_SCOPE)
    return scope


def set_caller_scope(request: ChatRequest, scope: str | None) -> None:
    """Record whom ``request`` is answered for (the pipeline does, before calling a
    backend; a test calling a backend itself may)."""
    if scope is not None:
        request.__dict__[_SCOPE] = scope
    else:
        request.__dict__.pop(_SCOPE, None)


class BackendSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One configured backend: a ``[backends.NAME]`` table of the config file.

    ``matrix`` overrides rows of the backend's compatibility matrix, field by
    field: a field the matrix does not simply support (``n`` rejected above 1)
    keeps its conditions under the new treatment (``n = "ignored"`` drops ``n``
    above 1; ``n: 1`` stays supported); a field it supports, or does not name,
    takes the new treatment for any value. ``mode`` is the matrix's default
    mode. A factory applies both with :meth:`configure_matrix`, reads its
    ``options`` with :meth:`options_as`, and gets its HTTP client from
    :meth:`BackendContext.http_for` and its credentials from :meth:`auth_headers`.
    """

    plugin: str
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    total_timeout: float = 600.0
    retries: int = 2
    max_reply_bytes: int = 64 * 1024 * 1024
    """Largest whole reply read from the backend; a longer one is a 502."""
    mode: Mode = Mode.STRICT
    matrix: dict[str, Treatment] = msgspec.field(default_factory=dict)
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def configure_matrix(self, matrix: Matrix, name: str) -> Matrix:
        """``matrix`` for the backend called ``name``, with this table's overrides and mode.

        Raises :class:`ValueError` for an override the matrix cannot take (a row
        that does not exist, ``messages`` not supported).
        """
        return matrix.renamed(name).with_treatments(self.matrix).with_mode(self.mode)

    def options_as(self, kind: type[_Options], name: str) -> _Options:
        """``options`` checked and typed as ``kind`` (a msgspec Struct).

        Raises :class:`ValueError` naming the backend and the key at fault.
        """
        return convert_options(self.options, kind, name)

    def http_policy(self, **extra: Any) -> HttpPolicy:
        """The HTTP policy these settings give (timeouts, retries, reply cap); ``extra``
        sets the policy's other fields (``backoff_base``, say)."""
        from ._http import HttpPolicy

        return HttpPolicy(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            total_timeout=self.total_timeout,
            retries=self.retries,
            max_reply_bytes=self.max_reply_bytes,
            **extra,
        )

    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer`` with the resolved API key; empty without one."""
        api_key = self.resolved_api_key()
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def resolved_api_key(self) -> str | None:
        """``api_key``, else the value of the variable ``api_key_env`` names, else None."""
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None


def convert_options(options: Mapping[str, Any], kind: type[_Options], name: str) -> _Options:
    """``options`` checked and typed as ``kind``; :class:`ValueError` naming backend
    ``name`` and the key at fault otherwise."""
    try:
        return msgspec.convert(options, kind)
    except msgspec.ValidationError as exc:
        raise ValueError(f"backend {name!r}: invalid options: {exc}") from None


class FileSource(Protocol):
    """Files uploaded through the translator's own ``/v1/files``, as backends see them."""

    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        """``(filename, content_type, data)`` of a file uploaded in ``scope`` (the request's
        :func:`caller_scope`; None: any), or None for an id unknown there."""
        ...


class SharedCache(Protocol):
    """Short strings every process and replica of the server sees alike (the ids
    a backend's upstream gave for uploaded files); None in the context when the
    server runs alone, and the backend keeps them itself."""

    async def remember(self, key: str, make: Callable[[], Awaitable[str | None]]) -> str | None:
        """The value of ``key``; when there is none, ``make()``'s, made by one process only
        while the others wait for it (None is not kept)."""
        ...

    async def forget(self, key: str, value: str) -> None:
        """Drop ``key`` if it still holds ``value`` (another process may have replaced it)."""
        ...


class BackendContext:
    """Shared services a backend may use: the pooled HTTP client, files, media fetching,
    and a cache shared across processes."""

    def __init__(
        self,
        http: HttpClient | None = None,
        files: FileSource | None = None,
        fetcher: Any = None,
        cache: SharedCache | None = None,
    ) -> None:
        self._http = http
        self.files = files
        self.fetcher = fetcher
        self.cache = cache

    @property
    def http(self) -> HttpClient:
        """The pooled HTTP client, created on first use."""
        if self._http is None:
            from ._http import HttpClient

            self._http = HttpClient()
        return self._http

    def http_for(self, name: str, settings: BackendSettings, **extra: Any) -> BoundClient:
        """The pooled client bound to backend ``name`` with ``settings``' HTTP policy
        (``extra`` as for :meth:`BackendSettings.http_policy`)."""
        return self.http.bind(name, settings.http_policy(**extra))

    async def aclose(self) -> None:
        """Close what the context opened."""
        if self._http is not None:
            await self._http.aclose()


class Backend(abc.ABC):
    """A chat backend. Subclass it, or implement the same methods."""

    name: str
    matrix: Matrix
    keeps_sessions: ClassVar[bool] = False
    """True when the backend keeps conversation state itself (the translator then does not)."""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` (already checked against the matrix) as a whole."""

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Answer ``request`` as canonical chunks: one id and ``created`` for the stream.

        Called only when the matrix supports ``stream``; otherwise the
        translator streams the whole answer of :meth:`complete` itself, so a
        backend that cannot stream leaves this out and says so in its matrix.
        """
        raise NotImplementedError(
            f"{self.name} does not stream; its matrix must not support 'stream'"
        )

    def encode_request(self, request: ChatRequest) -> bytes:
        """The native request body for ``request``, without I/O.

        Raises :class:`~translator.errors.NeedsIOError` when the request needs
        I/O first (a remote image this backend wants inline).
        """
        raise NotImplementedError(f"{self.name} has no pure request translation")

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        """The canonical response for the backend's native reply ``body``."""
        raise NotImplementedError(f"{self.name} has no pure response translation")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds."""


class BackendFactory(Protocol):
    """What a plugin registers: a named way to build backends from settings."""

    plugin_name: str
    description: str

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        """A backend called ``name``, configured by ``settings``."""
        ...
