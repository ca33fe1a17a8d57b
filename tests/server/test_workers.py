"""``translator serve`` as users run it: restarts keep what was acknowledged, ``--workers N``.

The backend is a loopback OpenAI-compatible upstream that records what it is
sent; the client is the official OpenAI SDK, on fresh connections where a
test stops a worker (a kept-alive connection would wait on it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.serve_process import RecordingUpstream, start_serve, stop
from translator._cli import main

CONFIG = """
[backends.up]
plugin = "openai-compatible"
base_url = "{upstream}"
api_key = "upstream-key"
"""


@pytest.fixture
def upstream() -> RecordingUpstream:
    return RecordingUpstream()


@pytest.fixture
async def config(upstream: RecordingUpstream, tmp_path: Path) -> AsyncIterator[str]:
    """A configuration with no ``[stores]`` table: the durable local default."""
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server()
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(upstream=server.make_url("/v1")))
    yield str(path)
    await server.close()


def client(base: str) -> openai.AsyncOpenAI:
    """An SDK client that opens a fresh connection for each request."""
    http = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_keepalive_connections=0))
    return openai.AsyncOpenAI(base_url=base, api_key="-", max_retries=0, http_client=http)


async def chat(sdk: openai.AsyncOpenAI, text: str) -> str | None:
    reply = await sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": text}],
        extra_body={"session_id": "s"},
        timeout=20,
    )
    return reply.choices[0].message.content


async def test_a_restart_with_the_default_stores_keeps_files_and_sessions(
    config: str, upstream: RecordingUpstream, tmp_path: Path
) -> None:
    served = await asyncio.to_thread(start_serve, "--config", config, cwd=tmp_path)
    sdk = client(served.base)
    await chat(sdk, "my name is Ada")
    uploaded = await sdk.files.create(
        file=("notes.txt", b"kept across restarts"), purpose="user_data"
    )
    await sdk.close()
    assert await asyncio.to_thread(stop, served) == 0

    again = await asyncio.to_thread(start_serve, "--config", config, cwd=tmp_path)
    sdk = client(again.base)
    try:
        assert await chat(sdk, "what is my name?") == "re: what is my name?"
        assert upstream.contents() == ["my name is Ada", "re: my name is Ada", "what is my name?"]
        assert [f.id for f in (await sdk.files.list()).data] == [uploaded.id]
        assert (await sdk.files.content(uploaded.id)).read() == b"kept across restarts"
    finally:
        await sdk.close()
        assert await asyncio.to_thread(stop, again, signal.SIGINT) == 0


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


async def test_two_workers_both_answer_and_a_session_spans_them(
    config: str, upstream: RecordingUpstream, tmp_path: Path
) -> None:
    served = await asyncio.to_thread(
        start_serve, "--config", config, "--workers", "2", cwd=tmp_path
    )
    first, second = workers_of(served.process.pid)
    sdk = client(served.base)
    try:
        # Only the first worker can accept: it answers, and starts the session.
        os.kill(second, signal.SIGSTOP)
        assert await chat(sdk, "my name is Ada") == "re: my name is Ada"
        os.kill(second, signal.SIGCONT)
        # Only the second can: it answers, with the history the first stored.
        os.kill(first, signal.SIGSTOP)
        assert await chat(sdk, "what is my name?") == "re: what is my name?"
        assert upstream.contents() == ["my name is Ada", "re: my name is Ada", "what is my name?"]
    finally:
        for pid in (first, second):
            os.kill(pid, signal.SIGCONT)
        await sdk.close()
    assert await asyncio.to_thread(stop, served) == 0  # SIGTERM: every worker stops
    for pid in (first, second):
        with pytest.raises(ProcessLookupError):  # gone, and reaped by the parent
            os.kill(pid, 0)


def test_more_than_one_worker_with_memory_stores_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[stores]\nsessions = "memory"\n')
    root = logging.getLogger()
    logging_before = (root.handlers[:], root.level)
    assert main(["serve", "--port", "0", "--config", str(path), "--workers", "2"]) == 1
    assert (root.handlers, root.level) == logging_before  # a refused command sets up nothing
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--workers 2 needs stores every worker shares" in err
    assert "not 'memory'" in err


async def test_a_worker_that_dies_stops_the_others_and_the_server_fails(
    config: str, tmp_path: Path
) -> None:
    served = await asyncio.to_thread(
        start_serve, "--config", config, "--workers", "2", cwd=tmp_path
    )
    first, second = workers_of(served.process.pid)
    os.kill(first, signal.SIGKILL)
    # The parent stops the other worker and exits 1, for a supervisor to restart the whole.
    assert await asyncio.to_thread(served.process.wait, 30) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


async def test_sigint_stops_every_worker_gracefully(config: str, tmp_path: Path) -> None:
    served = await asyncio.to_thread(
        start_serve, "--config", config, "--workers", "3", cwd=tmp_path
    )
    pids = workers_of(served.process.pid)
    assert len(pids) == 3
    sdk = client(served.base)
    assert await chat(sdk, "hello") == "re: hello"
    await sdk.close()
    assert await asyncio.to_thread(stop, served, signal.SIGINT) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
