"""The access log (one parsed line per request) and ``/ready`` (stores, probes, draining)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.plugins.openai_compat.test_openai_compat import STREAM, Upstream, running_upstream
from tests.serve_async import serve_process
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving
from translator.server._logs import ACCESS_LOGGER, JSONFormatter, setup_logging

HELLO = [{"role": "user", "content": "the-secret-words-4111"}]
API_KEY = "sk-client-key-123456"

CONFIG = """
default_backend = "echo"

[server]
api_keys = ["{key}"]
{server}

[backends.echo]
plugin = "echo"
matrix = {{max_tokens = "ignored"}}

[backends.up]
plugin = "openai-compatible"
base_url = "{base_url}"
retries = 0

[[routes]]
model = "up-*"
backend = "up"
"""


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The access log as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_each_request_is_one_access_log_line(
    upstream: Upstream, access_lines: io.StringIO
) -> None:
    config = parse_config(CONFIG.format(key=API_KEY, server="", base_url=upstream.base_url))
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    upstream.then(upstream.sse(STREAM))
    async with serving(app) as root:
        sdk = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=API_KEY, max_retries=0)
        raw = await sdk.chat.completions.with_raw_response.create(
            model="echo",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=4,
            extra_body={"vlmrun": {"metadata": {"allow_logging": False}}},
        )
        stream = await sdk.chat.completions.create(
            model="up-1",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        assert [c async for c in stream]
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.retrieve("x", extra_headers={"Authorization": "Bearer wrong"})
        await sdk.close()

    text = access_lines.getvalue()
    assert "the-secret-words" not in text
    assert API_KEY not in text
    chat, streamed, refused = parsed(access_lines)
    assert chat["event"] == "request"
    assert chat["request_id"] == raw.headers["x-request-id"]
    assert chat["key"].startswith("key-")
    assert chat["route"] == "/v1/chat/completions"
    assert (chat["model"], chat["route_model"], chat["backend"]) == ("echo", "unrouted", "echo")
    assert chat["status"] == 200
    assert chat["ms"] >= 0
    assert chat["ignored"] == "max_tokens"
    assert chat["tokens_out"] >= 1
    assert chat["tokens_estimated"] is True
    assert chat["ttft_ms"] is None

    assert (streamed["route_model"], streamed["backend"]) == ("up-*", "up")
    assert streamed["stream"] is True
    assert streamed["ttft_ms"] <= streamed["ms"]
    assert (streamed["tokens_in"], streamed["tokens_out"]) == (3, 2)
    assert streamed["key"] == chat["key"]

    assert refused["status"] == 401
    assert refused["error"] == "invalid_api_key"
    assert refused["route"] == "/v1/models/{model}"
    assert refused["key"] is None


def test_the_log_goes_to_stderr_as_it_is_when_each_record_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An embedding program (or a test runner) swaps sys.stderr and closes the old one.
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(logging.INFO)
    log = logging.getLogger("translator.server")
    log.info("one")
    monkeypatch.setattr(sys, "stderr", second)
    first.close()
    log.info("two")
    assert second.getvalue().endswith(" INFO translator.server two\n")
    assert "Logging error" not in second.getvalue()


# -- /ready ----------------------------------------------------------------------


async def _get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ready_when_the_stores_answer_and_open_without_a_key(
    upstream: Upstream, tmp_path: Path
) -> None:
    server = f'data_dir = "{tmp_path / "files"}"'
    config = parse_config(CONFIG.format(key=API_KEY, server=server, base_url=upstream.base_url))
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root:
        status, body = await _get(f"{root}/ready")
    assert status == 200
    healthy = {"state": "healthy", "failures": 0, "in_flight": 0, "cooldown_remaining": 0.0}
    assert body == {
        "status": "ready",
        "checks": {"files": {"ok": True}, "sessions": {"ok": True}},
        "routing": {"echo": healthy, "up": healthy},
    }


async def test_unready_when_a_store_cannot_be_reached(upstream: Upstream, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    server = f'data_dir = "{blocker / "files"}"'
    config = parse_config(CONFIG.format(key=API_KEY, server=server, base_url=upstream.base_url))
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root:
        status, body = await _get(f"{root}/ready")
        health, _ = await _get(f"{root}/health")
    assert (status, health) == (503, 200)
    assert body["status"] == "unready"
    # Both local stores live under the data directory, which cannot be made.
    assert body["checks"]["files"]["ok"] is False
    assert body["checks"]["sessions"]["ok"] is False


async def test_backend_probes_report_reachability_without_a_chat(upstream: Upstream) -> None:
    server = "[server.observability]\nprobe_backends = true"
    text = CONFIG.format(key=API_KEY, server=server, base_url=upstream.base_url)
    text += f'\n[backends.gone]\nplugin = "openai-compatible"\nbase_url = "http://127.0.0.1:{_closed_port()}/v1"\n'
    app = create_app(parse_config(text), plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root:
        status, body = await _get(f"{root}/ready")
    assert status == 200  # a backend down is reported, not a reason to stop serving
    assert body["backends"]["up"]["reachable"] is True
    assert body["backends"]["up"]["status"] == 404  # any HTTP answer: GET /v1 is not a chat
    assert body["backends"]["gone"]["reachable"] is False
    assert upstream.bodies == []  # no chat was sent


async def test_serve_turns_unready_first_on_sigterm_and_logs_json_access_lines(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server.observability]\naccess_log = "json"\ndrain_seconds = 2.0\n'
        '[backends.echo]\nplugin = "echo"\n'
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    async with serve_process(config, env) as server:
        assert (await _get(f"{server.root}/ready"))[0] == 200
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        status, body = await _get(f"{server.root}/ready")
        assert (status, body["status"]) == (503, "draining")
        assert (await _get(f"{server.root}/health"))[0] == 200  # still alive, still serving
        assert await server.stop() == 0
    access = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    assert [(a["route"], a["status"]) for a in access] == [
        ("/ready", 200),
        ("/ready", 503),
        ("/health", 200),
    ]
    assert all(a["event"] == "request" and a["logger"] == ACCESS_LOGGER for a in access)
