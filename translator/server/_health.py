"""``/health`` (liveness) and ``/ready`` (readiness), both open without an API key.

``/health`` answers ``{"status": "ok"}`` while the process runs. ``/ready``
answers 200 ``{"status": "ready", ...}`` when the process can serve: its
configuration loaded (the app exists), every store answering its ``ping``,
and not draining; else 503 with ``"status": "unready"`` or ``"draining"``.
A graceful shutdown turns it to ``draining`` first, before the server stops
listening (``server.observability.drain_seconds``), so that a load balancer
stops sending new requests while the last ones finish.

With ``probe_backends`` on, ``/ready`` also reports, for each backend with a
``base_url``, whether an HTTP request to that URL gets any answer at all
(no chat is sent; a 401 or 404 still means reachable). Probes are reported,
and do not make the process unready: one backend down is routing's concern.
Under ``routing``, each backend's passive health as routing sees it (``state``:
``healthy``, ``cooled_down``, ``half_open`` or ``probing``; ``failures`` in a
row; requests ``in_flight``; ``cooldown_remaining`` seconds); a cooled-down
backend does not make the process unready either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import aiohttp
import msgspec
from aiohttp import web

from .._routing import BackendState, Health
from ..errors import StoreUnavailableError
from ..stores import FileStore, SessionStore

__all__ = ["READINESS", "Readiness"]

_PROBE_TIMEOUT = 3.0
_encoder = msgspec.json.Encoder()


class Check(msgspec.Struct, omit_defaults=True):
    ok: bool
    error: str | None = None


class Probe(msgspec.Struct, omit_defaults=True):
    reachable: bool
    status: int | None = None
    error: str | None = None
    ms: float | None = None


class ReadyBody(msgspec.Struct, omit_defaults=True):
    status: str
    checks: dict[str, Check]
    backends: dict[str, Probe] | None = None
    routing: dict[str, BackendState] | None = None


class Readiness:
    """Whether this process can serve; :meth:`drain` makes it say no from then on."""

    def __init__(
        self,
        stores: Mapping[str, FileStore | SessionStore | None],
        probes: Sequence[tuple[str, str]] = (),
        routing: Health | None = None,
    ) -> None:
        self.stores = {name: store for name, store in stores.items() if store is not None}
        self.probes = tuple(probes)
        """``(backend, base_url)`` to probe on each ``/ready``; empty: none."""
        self.draining = False
        self.routing = routing
        """Every backend's routing health, shown under ``routing``."""

    def drain(self) -> None:
        """Say ``draining`` from now on (a graceful shutdown has begun)."""
        self.draining = True

    async def answer(self) -> web.Response:
        """The ``/ready`` answer."""
        checks = {name: await _ping(store) for name, store in self.stores.items()}
        backends = None
        if self.probes:
            found = await asyncio.gather(*(_probe(url) for _, url in self.probes))
            backends = {name: probe for (name, _), probe in zip(self.probes, found, strict=True)}
        if self.draining:
            status = "draining"
        elif all(c.ok for c in checks.values()):
            status = "ready"
        else:
            status = "unready"
        routing = self.routing.snapshot() if self.routing is not None else None
        body = _encoder.encode(ReadyBody(status, checks, backends, routing))
        code = 200 if status == "ready" else 503
        return web.Response(status=code, body=body, content_type="application/json")


READINESS = web.AppKey("readiness", Readiness)
"""The app's :class:`Readiness` (``app[READINESS].drain()`` starts draining)."""


async def _ping(store: FileStore | SessionStore) -> Check:
    try:
        await store.ping()
    except OSError as exc:
        return Check(False, f"{type(exc).__name__}: {exc}")
    except StoreUnavailableError as exc:
        return Check(False, exc.message)
    return Check(True)


async def _probe(url: str) -> Probe:
    """Any HTTP answer from ``url`` means reachable."""
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=_PROBE_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Probe(False, error=type(exc).__name__)
    return Probe(True, status, ms=round((time.perf_counter() - started) * 1000, 1))
