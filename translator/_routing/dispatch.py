"""Sending one request along its route: matrix-aware choice, fallback, health.

For a route of several backends, before any call:

1. the strategy orders the backends (:mod:`~translator._routing.strategies`);
2. each backend's matrix is applied to its own copy of the request, without
   calling it: a backend that would refuse the request is left out (when
   every one refuses, the client gets the rejection of the route's first
   backend, with its ``param``), and one that would drop fields goes after
   those that keep them all. Backends of one kind (the same rules, unknown
   policy and mode: two hosts of one plugin) share one verdict, and a route
   whose backends are all of one kind asks none: the first attempt's own
   matrix step answers for all of them;
3. cooled-down backends are left out while another is available
   (:mod:`~translator._routing.health`); when none is, they are tried anyway.

Then the backends are tried in that order. A failure that the route's
``fallback_on`` names (:mod:`~translator._routing.fallback`) moves on to the
next, as long as nothing of the answer has been given to the client: a
whole answer is given only once it succeeded, a stream once its first chunk
arrived; a stream that fails later is not retried. Any other error, and the
last backend's failure, goes to the client. The caller's deadline covers
every attempt; ``attempt_timeout`` bounds one attempt within what remains.

The matrix is applied once more on each attempt, to the request joined to
its session's history: a backend that refuses what the history holds (an
image, say) is passed over then, uncalled, and when every one refuses, the
first refusal is the answer.

Each attempt is given a fresh copy of the request (decoded again from the
client's bytes), so that nothing one backend's matrix or session history did
to it reaches the next. A route of one backend is sent the request as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

from .._compat import Matrix, Mode, Report
from .._core import Completion, Stream, Translator
from .._http import failure_of
from .._model import ChatChunk, ChatRequest
from .._openai import decode_request, encode_request
from .._telemetry import WATCH
from ..errors import UnsupportedFieldError, UpstreamTimeoutError
from .fallback import FallbackPolicy
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
        if _blames_backend(error):
            self._health.record(self.backend, ok=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._health.finish(self.backend)
        await self.stream.aclose()


class _Plan:
    """A route, compiled: its order, its fallback policy and its model names."""

    __slots__ = (
        "attempt_timeout",
        "candidates",
        "kinds",
        "models",
        "order",
        "policy",
        "route",
        "uniform",
    )

    def __init__(self, route: Route, health: Health, matrices: Mapping[str, Matrix]) -> None:
        self.route = route
        self.candidates = tuple(route.candidates)
        self.order: Order = strategy_order(route.strategy, self.candidates, route.weights, health)
        self.policy = FallbackPolicy(route.fallback_on)
        self.models: Mapping[str, str] = route.models
        self.attempt_timeout = route.attempt_timeout
        # Backends of one kind (the same rules, unknown policy and mode: two hosts of
        # one plugin, say) give any request the same verdict.
        self.kinds = {
            b: (id(matrices[b].rules), matrices[b].unknown, matrices[b].mode)
            for b in self.candidates
        }
        self.uniform = len(set(self.kinds.values())) == 1
        """All of one kind: the matrix's verdict cannot tell them apart, so none is asked
        before the first attempt (which the matrix refuses before any call, if it does)."""


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
            matrices = {b: self.translator.backend(b).matrix for b in route.candidates}
            plan = self._plans[id(route)] = _Plan(route, self.health, matrices)
        return plan

    async def complete(
        self,
        chat: ChatRequest,
        body: bytes | None = None,
        *,
        mode: Mode | None = None,
        scope: str | None = None,
    ) -> Routed:
        """Answer ``chat`` as a whole (``body``: the bytes it was decoded from, if any)."""
        translator = self.translator

        def attempt(backend: str, request: ChatRequest) -> Awaitable[Completion]:
            return translator.complete(request, backend, mode=mode, scope=scope)

        completion, attempts = await self._route(chat, body, mode, attempt)
        self.health.finish(attempts[-1])
        return Routed(completion, attempts)

    async def stream(
        self,
        chat: ChatRequest,
        body: bytes | None = None,
        *,
        mode: Mode | None = None,
        scope: str | None = None,
    ) -> RoutedStream:
        """Start streaming ``chat``: the first chunk is read before the result is returned."""
        translator = self.translator

        async def attempt(backend: str, request: ChatRequest) -> tuple[Stream, ChatChunk | None]:
            stream = await translator.stream(request, backend, mode=mode, scope=scope)
            try:
                return stream, await anext(aiter(stream), None)
            except BaseException:
                await stream.aclose()
                raise

        (stream, first), attempts = await self._route(chat, body, mode, attempt)
        return RoutedStream(stream, first, attempts, self.health)

    async def _route(
        self,
        chat: ChatRequest,
        body: bytes | None,
        mode: Mode | None,
        attempt: Callable[[str, ChatRequest], Awaitable[T]],
    ) -> tuple[T, list[str]]:
        """``attempt`` on each backend in turn until one succeeds or a failure may not
        fall back; the result and the backends tried. The one that succeeded is
        still counted in flight: the caller tells :attr:`health` when it is done."""
        plan = self.plan(chat.model)
        order, body = self._choose(plan, chat, body, mode)
        health = self.health
        attempts: list[str] = []
        refused: UnsupportedFieldError | None = None
        for i, backend in enumerate(order):
            if body is None or i == 0:
                request = chat
                renamed = plan.models.get(backend)
                if renamed is not None:
                    request.model = renamed
            else:
                request = self._copy_for(plan, backend, body)
            attempts.append(backend)
            health.start(backend)
            try:
                result = await _bounded(attempt(backend, request), plan.attempt_timeout, backend)
            except UnsupportedFieldError as exc:
                # The matrix refused the request (with its session's history): not called.
                health.record(backend, ok=None)
                health.finish(backend)
                attempts.pop()
                refused = refused or exc
                if i + 1 < len(order) and not plan.uniform:
                    continue
                raise refused from None
            except BaseException as exc:
                watcher = WATCH.get()
                if watcher is not None and isinstance(exc, Exception):
                    watcher.backend_failed(backend, exc)
                health.record(backend, ok=False if _blames_backend(exc) else None)
                health.finish(backend)
                if i + 1 < len(order) and plan.policy.allows(exc):
                    continue
                raise
            health.record(backend, ok=True)
            return result, attempts
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
        hooked = self._hooked()
        available = self.health.available
        if plan.uniform and not hooked:
            return [b for b in order if available(b)] or list(order), body
        # Backends of one kind share a verdict, unless a plugin's adjust_request
        # hook may treat them apart.
        verdicts: dict[object, str] | None = None if hooked else {}
        kinds = plan.kinds
        rejected: set[str] = set()
        lossy: set[str] = set()
        for backend in order:
            key = kinds[backend]
            verdict = verdicts.get(key) if verdicts is not None else None
            if verdict is None:
                verdict = self._verdict(plan, backend, body, mode)
                if verdicts is not None:
                    verdicts[key] = verdict
            if verdict == "rejected":
                rejected.add(backend)
            elif verdict == "lossy":
                lossy.add(backend)
        accepted = [b for b in order if b not in rejected]
        if not accepted:
            # The route's first backend's own rejection, with its param and name.
            self.translator.prepare(
                self._copy_for(plan, plan.candidates[0], body), plan.candidates[0], mode=mode
            )
            raise AssertionError("a rejected request was accepted on a second look")
        chosen = [b for b in accepted if available(b)] or accepted
        if lossy:
            chosen.sort(key=lambda b: b in lossy)
        return chosen, body

    def _verdict(self, plan: _Plan, backend: str, body: bytes, mode: Mode | None) -> str:
        """``rejected``, ``lossy`` (fields would be dropped) or ``whole``, for ``backend``."""
        try:
            _, report, _ = self.translator.prepare(
                self._copy_for(plan, backend, body), backend, mode=mode
            )
        except UnsupportedFieldError:
            return "rejected"
        return "lossy" if report.dropped else "whole"

    @staticmethod
    def _copy_for(plan: _Plan, backend: str, body: bytes) -> ChatRequest:
        copy = _copy(body)
        renamed = plan.models.get(backend)
        if renamed is not None:
            copy.model = renamed
        return copy

    def _hooked(self) -> bool:
        """Whether some plugin adjusts requests (per backend, perhaps)."""
        pm = self.translator.plugin_manager
        return pm is not None and bool(pm.hook.adjust_request.get_hookimpls())


def _blames_backend(error: BaseException) -> bool:
    """Whether ``error`` is the backend's own failure, which counts against its health."""
    kind = failure_of(error)
    return kind is not None and kind.blames_backend


def _copy(body: bytes) -> ChatRequest:
    """A fresh request, which no change to another copy reaches."""
    return decode_request(body)


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
