"""The :class:`Translator`: the entry point for embedders.

It decodes an OpenAI request, lets plugins adjust it, applies the chosen
backend's compatibility matrix, and drives the backend, completing or
streaming (natively, or emulated where the matrix says so). The pure halves,
:meth:`Translator.translate_request` and :meth:`Translator.translate_response`,
do no I/O at all.

Sessions: when a request names a session (top-level ``session_id`` or
``vlmrun.metadata.session_id``) and its backend keeps no state of its own
(``Backend.keeps_sessions`` is false), the translator sends the backend the
session's stored history before the request's messages, and stores the new
turn and the answer once it succeeds (a stream: once read to the end). How the
history and the new messages are joined is told in :mod:`translator.stores.history`.
A request with ``vlmrun.metadata.allow_retention: false`` gets the history but
adds nothing to it. The session id is read before the backend's matrix is
applied, so a matrix that drops or emulates ``session_id`` does not turn
sessions off; the response echoes the id.

``Translator(sessions=...)``: left out or ``None``, a fresh
:class:`~translator.stores.MemorySessionStore`; a :class:`~translator.stores.SessionStore`
of your own; ``False`` to keep no history (session ids then only go to the
backends whose matrix keeps them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Literal

import msgspec
import pluggy
from msgspec import UNSET

from .backend import Backend, BackendContext, BackendSettings
from .compat import Mode, Report, Treatment
from .errors import NotFoundError
from .model import ChatChunk, ChatRequest, ChatResponse
from .openai import decode_request, encode_response
from .stores import MemorySessionStore, SessionStore, StreamRecorder, Turn, answer_message
from .streaming import chunks_from_response

__all__ = ["Completion", "Stream", "Translator"]


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
        self._backends: dict[str, Backend] = dict(backends or {})
        if not self._backends:
            from plugins.echo import EchoBackend

            self._backends["echo"] = EchoBackend()

    @classmethod
    def from_settings(
        cls,
        settings: Mapping[str, BackendSettings],
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        context: BackendContext | None = None,
        sessions: SessionStore | Literal[False] | None = None,
    ) -> Translator:
        """Build every configured backend through the plugin that provides it."""
        from .plugins import backend_factories, get_plugin_manager

        pm = plugin_manager or get_plugin_manager()
        factories = backend_factories(pm)
        context = context or BackendContext()
        backends: dict[str, Backend] = {}
        for name, backend_settings in settings.items():
            factory = factories.get(backend_settings.plugin)
            if factory is None:
                known = ", ".join(sorted(factories))
                plugin = backend_settings.plugin
                raise ValueError(f"backend {name!r}: no plugin named {plugin!r} (known: {known})")
            backends[name] = factory.create(name, backend_settings, context)
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

    def prepare(
        self, body: bytes | ChatRequest, backend: str, *, mode: Mode | None = None
    ) -> tuple[ChatRequest, Report, Backend]:
        """Decode (if needed), adjust, and apply ``backend``'s matrix."""
        target = self._backends.get(backend) or self.backend(backend)
        request = _request(body)
        adjust = self._adjust_request
        if adjust is not None and adjust.get_hookimpls():
            adjust(request=request, backend=backend)
        return request, target.matrix.apply(request, mode=mode), target

    def _prepare(
        self, body: bytes | ChatRequest, backend: str, mode: Mode | None
    ) -> tuple[ChatRequest, Report, Backend, str | None, bool]:
        """:meth:`prepare`, plus the session id and retention read before the matrix."""
        target = self._backends.get(backend) or self.backend(backend)
        request = _request(body)
        adjust = self._adjust_request
        if adjust is not None and adjust.get_hookimpls():
            adjust(request=request, backend=backend)
        # Most requests name no session: two identity tests, not the property.
        if request.session_id is UNSET and request.vlmrun is UNSET:
            session_id = None
        else:
            session_id = request.session
        retain = True
        if session_id is not None:
            vlmrun = request.vlmrun
            if vlmrun is not UNSET and vlmrun.metadata is not UNSET:
                retain = vlmrun.metadata.allow_retention
        report = target.matrix.apply(request, mode=mode)
        return request, report, target, session_id, retain

    def translate_request(self, body: bytes, backend: str, *, mode: Mode | None = None) -> bytes:
        """The native request ``backend`` would be sent for the OpenAI request ``body``."""
        # :meth:`prepare` inlined: this is the whole cost of a pure translation.
        target = self._backends.get(backend) or self.backend(backend)
        # An isinstance() test against a Struct class costs more than this check.
        if type(body) is bytes or not isinstance(body, ChatRequest):
            request = decode_request(body)
        else:
            request = body
        adjust = self._adjust_request
        if adjust is not None and adjust.get_hookimpls():
            adjust(request=request, backend=backend)
        target.matrix.apply(request, mode=mode)
        return target.encode_request(request)

    def translate_response(self, body: bytes, backend: str, *, model: str) -> bytes:
        """The OpenAI ``chat.completion`` for ``backend``'s native reply ``body``."""
        return encode_response(self.backend(backend).decode_response(body, model=model))

    async def complete(
        self,
        body: bytes | ChatRequest,
        backend: str,
        *,
        mode: Mode | None = None,
        session_scope: str | None = None,
    ) -> Completion:
        """Answer a request as a whole.

        ``session_scope`` keeps the translator's session histories of one
        caller apart from another's: the same session id in two scopes is two
        sessions (the server passes one per API key).
        """
        request, report, target, session_id, retain = self._prepare(body, backend, mode)
        turn = echo = None
        if session_id is not None:
            turn = await self._join(target, request, _scoped(session_id, session_scope), retain)
            echo = session_id if turn is not None else request.session
        response = await target.complete(request)
        self._finish(response, request, backend, echo)
        if turn is not None:
            await turn.record(answer_message(response))
        return Completion(response, report)

    async def stream(
        self,
        body: bytes | ChatRequest,
        backend: str,
        *,
        mode: Mode | None = None,
        session_scope: str | None = None,
    ) -> Stream:
        """Answer a request as a stream of chunks, natively or emulated (``session_scope``
        as for :meth:`complete`)."""
        request = _request(body)
        include_usage = request.wants_usage
        request, report, target, session_id, retain = self._prepare(request, backend, mode)
        turn = echo = None
        if session_id is not None:
            turn = await self._join(target, request, _scoped(session_id, session_scope), retain)
            echo = session_id if turn is not None else request.session
        if target.matrix.treatment("stream", True) is not Treatment.SUPPORTED:
            # Emulated, or dropped in lenient mode: either way the client asked
            # for a stream, so the translator streams the whole answer itself.
            if not report.emulates("stream"):
                report.emulate("stream", "the translator streams the whole answer")
            chunks = self._emulate(target, request, backend, include_usage, echo)
        else:
            chunks = target.stream(request)
        if echo is not None:
            chunks = _in_session(chunks, echo, turn)
        return Stream(chunks, report, include_usage)

    async def _join(
        self, target: Backend, request: ChatRequest, session_id: str, retain: bool
    ) -> Turn | None:
        """Give ``request`` its session's history, when the translator keeps it."""
        store = self.sessions
        if store is None or target.keeps_sessions:
            return None
        return await Turn.begin(store, session_id, request, retain=retain)

    async def _emulate(
        self,
        target: Backend,
        request: ChatRequest,
        backend: str,
        include_usage: bool,
        session_id: str | None,
    ) -> AsyncIterator[ChatChunk]:
        response = await target.complete(request)
        self._finish(response, request, backend, session_id)
        for chunk in chunks_from_response(response, include_usage=include_usage):
            yield chunk

    def _finish(
        self, response: ChatResponse, request: ChatRequest, backend: str, session_id: str | None
    ) -> None:
        if session_id is not None and response.session_id is UNSET:
            response.session_id = session_id
        adjust = self._adjust_response
        if adjust is not None and adjust.get_hookimpls():
            adjust(response=response, request=request, backend=backend)

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


def _request(body: bytes | ChatRequest) -> ChatRequest:
    """``body`` decoded, unless it is a request already."""
    if type(body) is bytes or not isinstance(body, ChatRequest):
        return decode_request(body)
    return body


def _scoped(session_id: str, scope: str | None) -> str:
    """The store key of ``session_id`` within ``scope``."""
    return session_id if scope is None else f"{scope}/{session_id}"


async def _in_session(
    chunks: AsyncIterator[ChatChunk], session_id: str, turn: Turn | None
) -> AsyncIterator[ChatChunk]:
    """Echo the session id on every chunk; record the answer of a complete stream."""
    recorder = StreamRecorder() if turn is not None and turn.store is not None else None
    try:
        async for chunk in chunks:
            if chunk.session_id is UNSET:
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
