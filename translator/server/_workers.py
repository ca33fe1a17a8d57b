"""``translator serve --workers N``: N processes serving one port.

Pre-forking: the parent opens the listening socket, forks N workers that
each build their own app (their own event loop, connection pools and store
clients: nothing crosses a fork) and accept on the shared socket, then only
watches them. SIGTERM or SIGINT to the parent is passed to every worker,
which finishes its requests in flight (``shutdown_timeout``) and exits; the
parent exits once all have, with status 0, or 1 when a worker failed. A
worker that dies makes the parent stop the others: a supervisor restarts the
whole. Metrics go through ``prometheus_client``'s multiprocess mode, in
``PROMETHEUS_MULTIPROC_DIR`` or a temporary directory, so that ``/metrics``
from any worker counts them all. State lives in the stores, so any worker may answer any request;
memory stores would split sessions and files between workers, so the CLI
refuses them with more than one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType

from aiohttp import web

from ._runner import base_url, serve_socket, until_stopped
from ._shared_metrics import MULTIPROC_ENV, prepare_multiprocess, worker_exited

__all__ = ["run_workers"]

log = logging.getLogger("translator.server")


def run_workers(
    make_app: Callable[[], web.Application],
    host: str,
    port: int,
    workers: int,
    *,
    announce: Callable[[str], None] | None = None,
    shutdown_timeout: float = 30.0,
) -> int:
    """Serve ``make_app()`` from ``workers`` processes until SIGINT or SIGTERM; the exit status."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    sock = socket.create_server((host, port), family=_family(host), backlog=1024)
    sock.setblocking(False)
    url = base_url(host, sock.getsockname()[1])
    # Every worker writes its metrics to one directory, so that a scrape of
    # any worker adds up all of them; one the operator names is emptied first.
    given = os.environ.get(MULTIPROC_ENV)
    metrics_dir = prepare_multiprocess(given or tempfile.mkdtemp(prefix="translator-metrics-"))
    pids: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                status = _worker(make_app, sock, shutdown_timeout)
            except BaseException as exc:  # report, never unwind into the parent's code
                print(f"translator: worker {os.getpid()}: {exc!r}", file=sys.stderr, flush=True)
            finally:
                os._exit(status)
        pids.append(pid)
    sock.close()
    try:
        return _supervise(pids, url, announce)
    finally:
        if given is None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _worker(
    make_app: Callable[[], web.Application], sock: socket.socket, shutdown_timeout: float
) -> int:
    def serve(app: web.Application) -> AbstractAsyncContextManager[None]:
        return serve_socket(app, sock, shutdown_timeout=shutdown_timeout)

    asyncio.run(until_stopped(make_app, serve))
    return 0


def _supervise(pids: list[int], url: str, announce: Callable[[str], None] | None) -> int:
    """Pass SIGINT and SIGTERM on to the workers; wait for them all."""
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _signal(pids, signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    if announce is not None:
        announce(url)
    status = 0
    alive = set(pids)
    while alive:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        worker_exited(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0:
            status = 1
        if not stopping:  # a worker died on its own: stop the others
            log.error("worker %d exited (%d); stopping the others", pid, code)
            stopping = True
            status = 1
            _signal(alive, signal.SIGTERM)
    return status


def _signal(pids: list[int] | set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue  # already gone


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
