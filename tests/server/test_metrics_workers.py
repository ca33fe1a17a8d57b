"""``/metrics`` of ``translator serve --workers 2``: any worker's scrape adds up every
worker's files, whatever the other processes are writing meanwhile.

The server runs as users run it, in a child process; most tests name its
metrics directory (``PROMETHEUS_MULTIPROC_DIR``) to see into it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.metrics_scrape import Scrape, scrape
from tests.serve_process import start_serve, stop

CONFIG = '[backends.echo]\nplugin = "echo"\n[[routes]]\nmodel = "echo"\nbackend = "echo"\n'
HELLO = [{"role": "user", "content": "Hello"}]
REQUESTS = "translator_requests_total"


class TwoWorkers:
    """A two-worker server on loopback, its metrics directory (if named), and its log."""

    def __init__(self, root: str, metrics: Path, log: Path) -> None:
        self.root = root
        self.metrics = metrics
        self.log = log


@asynccontextmanager
async def two_workers(
    tmp_path: Path, metrics: Path | None, *, make_metrics_dir: bool = True
) -> AsyncIterator[TwoWorkers]:
    """``translator serve --workers 2``, its metrics in ``metrics`` (else its own choice),
    a directory made beforehand unless ``make_metrics_dir`` is false."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if metrics is not None:
        if make_metrics_dir:
            await asyncio.to_thread(metrics.mkdir)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    log = tmp_path / "serve.log"
    args = ("--config", str(config), "--workers", "2")
    with log.open("w") as err:
        served = await asyncio.to_thread(start_serve, *args, cwd=tmp_path, env=env, stderr=err)
    try:
        root = served.base.removesuffix("/v1/openai")
        yield TwoWorkers(root, metrics or tmp_path, log)
    finally:
        assert await asyncio.to_thread(stop, served) == 0


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[TwoWorkers]:
    async with two_workers(tmp_path, tmp_path / "metrics") as server:
        yield server


async def chats(root: str, count: int) -> None:
    """``count`` chat requests at once, each on a connection of its own (either worker)."""
    fresh = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=fresh) as session:

        async def chat() -> None:
            body = {"model": "echo", "messages": HELLO}
            async with session.post(f"{root}/v1/chat/completions", json=body) as response:
                assert response.status == 200

        await asyncio.gather(*(chat() for _ in range(count)))


async def test_serve_with_two_workers_counts_every_request_in_every_scrape(
    tmp_path: Path,
) -> None:
    async with two_workers(tmp_path, metrics=None) as server:  # a temporary directory
        await chats(server.root, 24)
        views = [await scrape(server.root) for _ in range(6)]
    for view in views:
        assert view.value(REQUESTS, model="echo", status="200") == 24


def starting_workers(directory: Path, until: float) -> int:
    """Create metrics files in ``directory`` as workers starting up and exiting do, one
    after another until ``until``: each is made by ``prometheus_client``'s own writer
    (empty for a moment, then sized) and removed as the live gauges of a worker that
    exited are. How many were made."""
    made = 0
    while time.monotonic() < until:
        path = directory / f"gauge_livesum_{4_000_000 + made}.db"
        values = MmapedDict(str(path))  # type: ignore[no-untyped-call]
        values.close()  # type: ignore[no-untyped-call]
        path.unlink()
        made += 1
    return made


async def test_scrapes_are_whole_while_other_processes_create_their_files(
    workers: TwoWorkers,
) -> None:
    await chats(workers.root, 8)
    until = time.monotonic() + 1.5
    maker = asyncio.create_task(asyncio.to_thread(starting_workers, workers.metrics, until))
    statuses: list[int] = []
    counted: list[float] = []
    fresh = aiohttp.TCPConnector(force_close=True)  # scrapes answered by either worker
    async with aiohttp.ClientSession(connector=fresh) as session:

        async def scrapes() -> None:
            while time.monotonic() < until:
                async with session.get(f"{workers.root}/metrics") as response:
                    statuses.append(response.status)
                    if response.status == 200:
                        text = await response.text()
                        counted.append(Scrape(text).value(REQUESTS, model="echo", status="200"))

        await asyncio.gather(scrapes(), scrapes())
    assert await maker > 50  # many files were made while scrapes ran
    assert len(statuses) > 50
    assert set(statuses) == {200}
    assert set(counted) == {8}  # every scrape counted every chat


async def test_an_empty_worker_file_is_passed_over_and_an_unreadable_one_is_a_503_logged(
    workers: TwoWorkers,
) -> None:
    await chats(workers.root, 2)
    # A worker killed between creating its file and sizing it leaves it empty for good.
    (workers.metrics / "counter_3999999.db").touch()
    assert (await scrape(workers.root)).value(REQUESTS, model="echo", status="200") == 2
    unreadable = workers.metrics / "counter_3999998.db"
    unreadable.mkdir()  # named as a worker's file, but no file can be read from it
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{workers.root}/metrics") as response,
    ):
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        error = (await response.json())["error"]
    assert error["code"] == "metrics_unavailable"
    assert error["type"] == "server_error"
    assert str(workers.metrics) not in error["message"]  # the path is in the log only
    log = await asyncio.to_thread(workers.log.read_text)
    assert f'metrics_unavailable reason="{unreadable}: ' in log
    assert "Traceback" not in log
    unreadable.rmdir()
    assert (await scrape(workers.root)).value(REQUESTS, model="echo", status="200") == 2


async def test_a_metrics_directory_not_made_yet_is_made(tmp_path: Path) -> None:
    metrics = tmp_path / "not" / "yet"
    async with two_workers(tmp_path, metrics, make_metrics_dir=False) as server:
        await chats(server.root, 4)
        view = await scrape(server.root)
    assert view.value(REQUESTS, model="echo", status="200") == 4
    assert metrics.is_dir()
