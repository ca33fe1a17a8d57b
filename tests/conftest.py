"""Shared test set-up.

aioresponses 0.7.9 builds ``ClientResponse`` objects without the
``stream_writer`` argument that aiohttp 3.14 requires; the shim below supplies
one, so mocked replies work on every aiohttp this project supports.

Each test has a data directory of its own (``XDG_DATA_HOME``), so the
durable default stores never share state between tests or touch the home
directory. The Redis tests share one real ``redis-server`` per run (:mod:`benchmarks.redis_server`),
each test under a key prefix of its own.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse

from benchmarks.redis_server import RedisServer

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
