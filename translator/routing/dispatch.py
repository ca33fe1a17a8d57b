"""Sending one request along its route: matrix-aware choice, fallback, health.

For a route of several backends, before any call:

1. the strategy orders the backends (:mod:`~translator.routing.strategies`);
2. each backend's matrix is applied to its own copy of the request, without
   calling it: a backend that would refuse the request is left out (when
   every one refuses, the client gets the rejection of the route's first
   backend, with its ``param``), and one that would drop fields goes after
   those that keep them all;
3. cooled-down backends are left out while another is available
   (:mod:`~translator.routing.health`); when none is, they are tried anyway.

Then the backends are tried in that order. A backend's failure that the
route's ``fallback_on`` names (:mod:`~translator.routing.faults`) moves on to
the next, as long as nothing of the answer has been given to the client: a
whole answer is given only once it succeeded, a stream once its first chunk
arrived; a stream that fails later is not retried. Any other error, and the
last backend's failure, goes to the client. The caller's deadline covers
every attempt; ``attempt_timeout`` bounds one attempt within what remains.

Each attempt is given a fresh copy of the request (decoded again from the
client's bytes), so that nothing one backend's matrix or session history did
to it reaches the next. A route of one backend is sent the request as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TypeVar

from ..compat import Mode, Report
from ..core import Completion, Stream, Translator
from ..errors import UnsupportedFieldError, UpstreamTimeoutError
from ..model import ChatChunk, ChatRequest
from ..openai import decode_request, encode_request
from .faults import FallbackPolicy, fault_of
from .health import Health
from .settings import HealthSettings, Route
from .strategies import Order, strategy_order
from .table import RouteTable

__all__ = ["Dispatcher", "Routed", "RoutedStream"]

T = TypeVar("T")


class Routed:
    """A whole answer, which backend gave it, and every backend tried (in order)."""

    __slots__ = ("attempts", "backend", "completion")

    def __init__(self, completion: Completion, attempts: list[str]) -> None:
        self.completion = completion
        self.attempts = attempts
        self.backend = attempts[-1]

    @property
    def report(self) -> Report:
        return self.completion.report


class RoutedStream:
    """A stream whose first chunk is in hand (None for an empty stream), and where it comes from.

    Iterate it for the chunks after ``first``; always :meth:`aclose` it.
    Tell it :meth:`failed` when reading it fails, so that the backend's health
    knows.
    """

    __slots__ = ("_closed", "_health", "attempts", "backend", "first", "stream")

    def __init__(
        self, stream: Stream, first: ChatChunk | None, attempts: list[str], health: Health
    ) -> None:
        self.stream = stream
        self.first = first
        self.attempts = attempts
        self.backend = attempts[-1]
        self._health = health
        self._closed = False

    @property
    def report(self) -> Report:
        return self.stream.report

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return aiter(self.stream)

    def failed(self, error: BaseException) -> None:
        """Reading the stream failed with ``error``: a backend's fault counts against it."""
        if fault_of(error) is not None:
            self._health.record(self.backend, ok=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._health.finish(self.backend)
        await self.stream.aclose()


class _Plan:
    """A route, compiled: its order, its fallback policy and its model names."""

    __slots__ = ("attempt_timeout", "candidates", "models", "order", "policy", "route")

    def __init__(self, route: Route, health: Health) -> None:
        self.route = route
        self.candidates = tuple(route.candidates)
        self.order: Order = strategy_order(route.strategy, self.candidates, route.weights, health)
        self.policy = FallbackPolicy(route.fallback_on)
        self.models: Mapping[str, str] = route.models
        self.attempt_timeout = route.attempt_timeout


class Dispatcher:
    """Routes requests to backends through a :class:`Translator` (see the module docstring)."""

    def __init__(
        self,
        translator: Translator,
        table: RouteTable,
        health: HealthSettings | Health | None = None,
    ) -> None:
        self.translator = translator
        self.table = table
        self.health = health if isinstance(health, Health) else Health(table.backends, health)
        self._plans: dict[int, _Plan] = {}

    def plan(self, model: str) -> _Plan:
        """The compiled route for ``model`` (404 when none)."""
        route = self.table.route_for(model)
        plan = self._plans.get(id(route))
        if plan is None:
            plan = self._plans[id(route)] = _Plan(route, self.health)
        return plan

    async def complete(
        self,
        chat: ChatRequest,
        body: bytes | None = None,
        *,
        mode: Mode | None = None,
        session_scope: str | None = None,
    ) -> Routed:
        """Answer ``chat`` as a whole (``body``: the bytes it was decoded from, if any)."""
        plan = self.plan(chat.model)
        order, body = self._choose(plan, chat, body, mode)
        health = self.health
        translator = self.translator
        attempts: list[str] = []
        for i, backend in enumerate(order):
            request = chat if body is None or i == 0 else _copy(body)
            renamed = plan.models.get(backend)
            if renamed is not None:
                request.model = renamed
            attempts.append(backend)
            health.start(backend)
            ok: bool | None = None
            try:
                call = translator.complete(request, backend, mode=mode, session_scope=session_scope)
                completion = await _bounded(call, plan.attempt_timeout, backend)
                ok = True
            except Exception as exc:
                ok = False if fault_of(exc) is not None else None
                if ok is False and i + 1 < len(order) and plan.policy.allows(exc):
                    continue
                raise
            finally:
                health.record(backend, ok=ok)
                health.finish(backend)
            return Routed(completion, attempts)
        raise AssertionError("a route has at least one backend")  # pragma: no cover

    async def stream(
        self,
        chat: ChatRequest,
        body: bytes | None = None,
        *,
        mode: Mode | None = None,
        session_scope: str | None = None,
    ) -> RoutedStream:
        """Start streaming ``chat``: the first chunk is read before the result is returned."""
        plan = self.plan(chat.model)
        order, body = self._choose(plan, chat, body, mode)
        health = self.health
        translator = self.translator
        attempts: list[str] = []
        for i, backend in enumerate(order):
            request = chat if body is None or i == 0 else _copy(body)
            renamed = plan.models.get(backend)
            if renamed is not None:
                request.model = renamed
            attempts.append(backend)
            health.start(backend)
            stream: Stream | None = None
            try:
                stream = await translator.stream(
                    request, backend, mode=mode, session_scope=session_scope
                )
                first = await _bounded(_first(stream), plan.attempt_timeout, backend)
            except BaseException as exc:
                ok = False if isinstance(exc, Exception) and fault_of(exc) is not None else None
                health.record(backend, ok=ok)
                health.finish(backend)
                if stream is not None:
                    await stream.aclose()
                if ok is False and i + 1 < len(order) and plan.policy.allows(exc):
                    continue
                raise
            health.record(backend, ok=True)
            return RoutedStream(stream, first, attempts, health)
        raise AssertionError("a route has at least one backend")  # pragma: no cover

    def _choose(
        self, plan: _Plan, chat: ChatRequest, body: bytes | None, mode: Mode | None
    ) -> tuple[list[str], bytes | None]:
        """The backends to try, in order (see the module docstring), and the bytes
        to copy the request from (None for a route of one backend)."""
        order = plan.order()
        if len(order) == 1:
            return list(order), None
        if body is None:
            body = encode_request(chat)
        rejected: dict[str, UnsupportedFieldError] = {}
        lossy: set[str] = set()
        for backend in order:
            copy = _copy(body)
            renamed = plan.models.get(backend)
            if renamed is not None:
                copy.model = renamed
            try:
                _, report, _ = self.translator.prepare(copy, backend, mode=mode)
            except UnsupportedFieldError as exc:
                rejected[backend] = exc
                continue
            if report.dropped:
                lossy.add(backend)
        accepted = [b for b in order if b not in rejected]
        if not accepted:
            raise next(rejected[b] for b in plan.candidates if b in rejected)
        available = self.health.available
        chosen = [b for b in accepted if available(b)] or accepted
        if lossy:
            chosen.sort(key=lambda b: b in lossy)
        return chosen, body


def _copy(body: bytes) -> ChatRequest:
    """A fresh request, which no change to another copy reaches."""
    return decode_request(body)


async def _first(stream: Stream) -> ChatChunk | None:
    return await anext(aiter(stream), None)


async def _bounded(call: Awaitable[T], seconds: float | None, backend: str) -> T:
    """``await call``, within ``seconds`` when given (a 504 for ``backend`` past them)."""
    if seconds is None:
        return await call
    try:
        async with asyncio.timeout(seconds) as scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise UpstreamTimeoutError(
                f"The {backend} backend did not answer within {seconds:g} seconds.",
                backend=backend,
            ) from None
        raise
