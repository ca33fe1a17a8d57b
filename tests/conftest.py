"""Shared test set-up.

aioresponses 0.7.9 builds ``ClientResponse`` objects without the
``stream_writer`` argument that aiohttp 3.14 requires; the shim below supplies
one, so mocked replies work on every aiohttp this project supports.

Each test has a data directory of its own (``XDG_DATA_HOME``), so the
durable default stores never share state between tests or touch the home
directory, and leaves logging as it found it (``translator serve`` run
in-process sets the root logger's handlers and level), so that no test's
logging reaches another's output. The Redis tests share one real
``redis-server`` per run (:mod:`benchmarks.redis_server`), each test under a
key prefix of its own.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse

from benchmarks.redis_server import RedisServer
from translator.server._logs import ACCESS_LOGGER

if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _MockedResponse(ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)

    aioresponses.core.ClientResponse = _MockedResponse  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _own_data_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The root and access loggers' handlers, level and propagation, put back after
    the test. pytest's own capture handlers, which come and go with each phase of
    a test, are left to it."""
    loggers = (logging.getLogger(), logging.getLogger(ACCESS_LOGGER))
    saved = [
        (logger, [h for h in logger.handlers if not _pytests(h)], logger.level, logger.propagate)
        for logger in loggers
    ]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = [*(h for h in logger.handlers if _pytests(h)), *handlers]
        logger.setLevel(level)
        logger.propagate = propagate


def _pytests(handler: logging.Handler) -> bool:
    """Whether ``handler`` is one of pytest's log capture handlers."""
    return type(handler).__module__.startswith("_pytest.")


# -- a real redis-server, shared by the Redis tests of one run ----------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for the run (tests keep apart by :func:`redis_prefix`)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own."""
    return f"test-{secrets.token_hex(4)}:"
