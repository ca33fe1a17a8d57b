"""The :class:`Translator`: the entry point for embedders, and the one pipeline.

Every request goes through the same steps, in the order the data flows:

1. **decode** the OpenAI body (unless it is a :class:`ChatRequest` already);
2. **adjust**: the plugins' ``adjust_request`` hooks change it in place;
3. **metadata**, read once (:func:`read_metadata`): the session id, whether the
   session may retain the turn, whether the request may be logged, whether a
   stream ends with a usage chunk. Read before the matrix, so that a matrix
   that drops or emulates ``session_id`` or ``stream_options`` does not turn
   those off;
4. **history**: when the request names a session and its backend keeps no
   state of its own (``Backend.keeps_sessions`` false), the session's stored
   history is joined to the request's messages (how: :mod:`translator.stores._history`);
5. **matrix**: the backend's compatibility matrix is applied to exactly what
   the backend will be sent, history included: a stored image the backend
   cannot take is refused (strict) or dropped and reported (lenient) like any
   other field;
6. **backend**: ``complete``, or ``stream`` natively, or a stream emulated
   here from a whole answer when the matrix does not support ``stream``.

Every step runs for one caller, the ``scope`` given to :meth:`Translator.complete`
and :meth:`Translator.stream` (the server's: one per API key; None: a single
tenant). It is passed explicitly, never ambient: the session history is kept
under it, and the request handed to the backend carries it
(:func:`~translator._backend.caller_scope`), so that a backend reads uploaded
files, and caches what it keeps per file, in that scope only.

The answer then echoes the session id (on the response, on every chunk), the
``adjust_response`` hooks see a whole response, and the new turn and the
answer are stored once it succeeds (a stream: once read to the end). A request
with ``vlmrun.metadata.allow_retention: false`` gets the history but adds
nothing to it.

:meth:`Translator.complete` and :meth:`Translator.stream` run all of it;
:meth:`Translator.prepare` and :meth:`Translator.translate_request` run steps
1, 2 and 5 (no I/O: no history) and :meth:`Translator.translate_response`
decodes a native reply. ``translate_request`` inlines its steps: it is the
whole cost of a pure translation, measured by ``python -m benchmarks``.

``Translator()`` given no backends gets the offline ``echo`` backend, built
through the plugin registry like any other (the core names no plugin).

``Translator(sessions=...)``: left out or ``None``, a fresh
:class:`~translator.stores.MemorySessionStore`; a :class:`~translator.stores.SessionStore`
of your own; ``False`` to keep no history (session ids then only go to the
backends whose matrix keeps them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from time import time_ns
from typing import Literal

import msgspec
import pluggy
from msgspec import UNSET

from ._backend import Backend, BackendContext, BackendSettings, set_caller_scope
from ._compat import Mode, Report, Treatment
from ._model import ChatChunk, ChatRequest, ChatResponse
from ._openai import decode_request, encode_response
from ._streaming import chunks_from_response
from ._telemetry import WATCH
from .errors import NotFoundError
from .stores import MemorySessionStore, SessionStore, StreamRecorder, Turn, answer_message

__all__ = ["Completion", "RequestMetadata", "Stream", "Translator", "read_metadata"]


class Completion(msgspec.Struct):
    """A whole answer, and what the matrix did to the request."""

    response: ChatResponse
    report: Report


class Stream:
    """A streamed answer: iterate it for chunks; ``report`` says what the matrix did."""

    def __init__(self, chunks: AsyncIterator[ChatChunk], report: Report, include_usage: bool):
        self._chunks = chunks
        self.report = report
        self.include_usage = include_usage

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return self._chunks

    async def aclose(self) -> None:
        """Stop the stream early, closing the backend's side of it."""
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()


class RequestMetadata(msgspec.Struct, frozen=True):
    """What the pipeline reads from a request before its backend's matrix is applied."""

    session_id: str | None = None
    """The session the request names (top-level, else ``vlmrun.metadata``)."""
    retain: bool = True
    """Whether the session may keep this turn (``vlmrun.metadata.allow_retention``)."""
    allow_logging: bool = True
    """Whether the request's content may be logged (``vlmrun.metadata.allow_logging``)."""
    include_usage: bool = False
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""


_PLAIN = RequestMetadata()
_PLAIN_USAGE = RequestMetadata(include_usage=True)


def read_metadata(request: ChatRequest) -> RequestMetadata:
    """The request's :class:`RequestMetadata`; most requests share one of two constants."""
    include_usage = request.stream_options is not UNSET and request.wants_usage
    # Most requests name no session and send no vlmrun: two identity tests.
    if request.session_id is UNSET and request.vlmrun is UNSET:
        return _PLAIN_USAGE if include_usage else _PLAIN
    retain = allow_logging = True
    vlmrun = request.vlmrun
    if vlmrun is not UNSET and vlmrun.metadata is not UNSET:
        retain = vlmrun.metadata.allow_retention
        allow_logging = vlmrun.metadata.allow_logging
    return RequestMetadata(request.session, retain, allow_logging, include_usage)


class _Call:
    """One request past the pipeline, ready for its backend."""

    __slots__ = ("backend", "backend_name", "echo", "metadata", "report", "request", "turn")

    def __init__(
        self,
        request: ChatRequest,
        report: Report,
        backend: Backend,
        backend_name: str,
        metadata: RequestMetadata,
        turn: Turn | None,
        echo: str | None,
    ) -> None:
        self.request = request
        self.report = report
        self.backend = backend
        self.backend_name = backend_name
        self.metadata = metadata
        self.turn = turn
        self.echo = echo
        """The session id the answer carries, or None."""


class Translator:
    """Backends by name, and the pipeline that drives them."""

    def __init__(
        self,
        backends: Mapping[str, Backend] | None = None,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        context: BackendContext | None = None,
        sessions: SessionStore | Literal[False] | None = None,
    ) -> None:
        self.context = context or BackendContext()
        self.plugin_manager = plugin_manager
        # Per-request hooks are called only when some plugin implements them:
        # an empty pluggy hook call costs about as much as decoding a small request.
        self._adjust_request = plugin_manager.hook.adjust_request if plugin_manager else None
        self._adjust_response = plugin_manager.hook.adjust_response if plugin_manager else None
        self.sessions: SessionStore | None = (
            MemorySessionStore() if sessions is None else None if sessions is False else sessions
        )
        if not backends:
            # The registry loads on first use: ``import translator`` loads no plugin.
            from ._plugins import DEFAULT_SETTINGS, build_backends, get_plugin_manager

            pm = plugin_manager or get_plugin_manager(entry_points=False)
            backends = build_backends(DEFAULT_SETTINGS, pm, self.context)
        self._backends: dict[str, Backend] = dict(backends)

    @classmethod
    def from_settings(
        cls,
        settings: Mapping[str, BackendSettings],
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        context: BackendContext | None = None,
        sessions: SessionStore | Literal[False] | None = None,
    ) -> Translator:
        """Build every configured backend through the plugin that provides it
        (:func:`~translator._plugins.build_backends`)."""
        from ._plugins import build_backends, get_plugin_manager

        pm = plugin_manager or get_plugin_manager()
        context = context or BackendContext()
        backends = build_backends(settings, pm, context)
        return cls(backends, plugin_manager=pm, context=context, sessions=sessions)

    # -- backends -----------------------------------------------------------

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    def backend(self, name: str) -> Backend:
        """The backend called ``name``."""
        try:
            return self._backends[name]
        except KeyError:
            raise NotFoundError(f"No backend named '{name}'.", code="backend_not_found") from None

    def add_backend(self, name: str, backend: Backend) -> None:
        self._backends[name] = backend

    # -- the pipeline --------------------------------------------------------

    def _adjusted(self, body: bytes | ChatRequest, backend_name: str) -> ChatRequest:
        """Steps 1 and 2: the request decoded, then adjusted by the plugins."""
        # An isinstance() test against a Struct class costs more than this check.
        if type(body) is bytes or not isinstance(body, ChatRequest):
            request = decode_request(body)
        else:
            request = body
        adjust = self._adjust_request
        if adjust is not None and adjust.get_hookimpls():
            adjust(request=request, backend=backend_name)
        return request

    async def _pipeline(
        self,
        body: bytes | ChatRequest,
        backend_name: str,
        mode: Mode | None,
        scope: str | None,
    ) -> _Call:
        """Steps 1 to 5, in order: what the backend is called with, for ``scope``."""
        backend = self._backends.get(backend_name) or self.backend(backend_name)
        request = self._adjusted(body, backend_name)
        set_caller_scope(request, scope)
        metadata = read_metadata(request)
        turn = None
        session_id = metadata.session_id
        if session_id is not None and self.sessions is not None and not backend.keeps_sessions:
            key = session_id if scope is None else f"{scope}/{session_id}"
            turn = await Turn.begin(self.sessions, key, request, retain=metadata.retain)
        watcher = WATCH.get()
        started = time_ns() if watcher is not None else 0
        report = backend.matrix.apply(request, mode=mode)
        if watcher is not None:
            watcher.matrix_applied(backend_name, started, report)
        # The translator keeps the session: the answer names it. Otherwise it
        # does only when the backend is sent the id (the matrix kept it).
        echo = None if session_id is None else session_id if turn is not None else request.session
        return _Call(request, report, backend, backend_name, metadata, turn, echo)

    def prepare(
        self, body: bytes | ChatRequest, backend_name: str, *, mode: Mode | None = None
    ) -> tuple[ChatRequest, Report, Backend]:
        """Steps 1, 2 and 5: decode (if needed), adjust, apply the matrix (no history)."""
        backend = self._backends.get(backend_name) or self.backend(backend_name)
        request = self._adjusted(body, backend_name)
        return request, backend.matrix.apply(request, mode=mode), backend

    def translate_request(
        self, body: bytes, backend_name: str, *, mode: Mode | None = None
    ) -> bytes:
        """The native request ``backend_name`` would be sent for the OpenAI request ``body``."""
        # :meth:`prepare` inlined: this is the whole cost of a pure translation
        # (the "translate_request" rows of ``python -m benchmarks``).
        backend = self._backends.get(backend_name) or self.backend(backend_name)
        if type(body) is bytes or not isinstance(body, ChatRequest):
            request = decode_request(body)
        else:
            request = body
        adjust = self._adjust_request
        if adjust is not None and adjust.get_hookimpls():
            adjust(request=request, backend=backend_name)
        backend.matrix.apply(request, mode=mode)
        return backend.encode_request(request)

    def translate_response(self, body: bytes, backend_name: str, *, model: str) -> bytes:
        """The OpenAI ``chat.completion`` for ``backend_name``'s native reply ``body``."""
        return encode_response(self.backend(backend_name).decode_response(body, model=model))

    async def complete(
        self,
        body: bytes | ChatRequest,
        backend_name: str,
        *,
        mode: Mode | None = None,
        scope: str | None = None,
    ) -> Completion:
        """Answer a request as a whole.

        ``scope`` is the caller's: it keeps one caller's session histories and
        uploaded files apart from another's. The same session id in two
        scopes is two sessions, and a file put in one scope is unknown in
        another (the server passes one per API key). None: one tenant, who
        sees every file.
        """
        call = await self._pipeline(body, backend_name, mode, scope)
        response = await call.backend.complete(call.request)
        self._finish(response, call)
        if call.turn is not None:
            await call.turn.record(answer_message(response))
        return Completion(response, call.report)

    async def stream(
        self,
        body: bytes | ChatRequest,
        backend_name: str,
        *,
        mode: Mode | None = None,
        scope: str | None = None,
    ) -> Stream:
        """Answer a request as a stream of chunks, natively or emulated (``scope``
        as for :meth:`complete`)."""
        call = await self._pipeline(body, backend_name, mode, scope)
        include_usage = call.metadata.include_usage
        if call.backend.matrix.treatment("stream", True) is not Treatment.SUPPORTED:
            # Emulated, or dropped in lenient mode: either way the client asked
            # for a stream, so the translator streams the whole answer itself.
            if not call.report.emulates("stream"):
                call.report.emulate("stream", "the translator streams the whole answer")
            chunks = self._emulate(call)
        else:
            chunks = call.backend.stream(call.request)
        if call.echo is not None:
            chunks = _in_session(chunks, call.echo, call.turn)
        return Stream(chunks, call.report, include_usage)

    async def _emulate(self, call: _Call) -> AsyncIterator[ChatChunk]:
        """A stream made of the backend's whole answer."""
        response = await call.backend.complete(call.request)
        self._finish(response, call)
        for chunk in chunks_from_response(response, include_usage=call.metadata.include_usage):
            yield chunk

    def _finish(self, response: ChatResponse, call: _Call) -> None:
        """Echo the session id, and let the plugins adjust the whole response."""
        if call.echo is not None and response.session_id is None:
            response.session_id = call.echo
        adjust = self._adjust_response
        if adjust is not None and adjust.get_hookimpls():
            adjust(response=response, request=call.request, backend=call.backend_name)

    async def aclose(self) -> None:
        """Close every backend, the session store and the shared HTTP client."""
        for backend in self._backends.values():
            await backend.aclose()
        if self.sessions is not None:
            await self.sessions.aclose()
        await self.context.aclose()

    async def __aenter__(self) -> Translator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _in_session(
    chunks: AsyncIterator[ChatChunk], session_id: str, turn: Turn | None
) -> AsyncIterator[ChatChunk]:
    """Echo the session id on every chunk; record the answer of a complete stream."""
    recorder = StreamRecorder() if turn is not None and turn.store is not None else None
    try:
        async for chunk in chunks:
            if chunk.session_id is None:
                chunk.session_id = session_id
            if recorder is not None:
                recorder.add(chunk)
            yield chunk
        if turn is not None and recorder is not None and recorder.finished:
            await turn.record(recorder.message())
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
