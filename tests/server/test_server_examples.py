"""Each example configuration served for real: every model ``GET /v1/models`` lists
answers, and so does the model ``translator serve``'s banner offers.

The upstreams are loopback fakes: Ollama (tests/ollama_server.py), the VLM Run
agent server (tests/vlm_agent_server.py) and a minimal OpenAI-compatible one.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.ollama_server import FakeOllama
from tests.vlm_agent_server import FakeAgentServer
from translator._cli import _example_model
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def _openai_upstream(seen: list[str]) -> web.Application:
    """A Chat Completions endpoint that answers every model, recording the names."""

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body["model"])
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@asynccontextmanager
async def _upstream(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, dict[str, str], dict[str, str]]]:
    """``(config text, environ, request headers)`` for ``example`` against its fake upstream."""
    text = (EXAMPLES / f"{example}.toml").read_text()
    if example == "echo":
        yield text, {}, {}
        return
    app: web.Application
    environ: dict[str, str] = {}
    headers: dict[str, str] = {}
    if example == "ollama":
        app, real, path = (
            FakeOllama(models={"llava", "llama3.2"}).app(),
            "http://localhost:11434",
            "",
        )
    elif example == "openai-compatible":
        app, real, path = _openai_upstream([]), "http://localhost:8000/v1", "/v1"
        headers = {"Authorization": "Bearer change-me"}
    else:
        agent = FakeAgentServer(polls=1)
        app, real, path = agent.app(), "https://agent.vlm.run/v1", "/v1"
        monkeypatch.setenv("VLMRUN_API_KEY", agent.api_key)
        environ = {"TRANSLATOR_API_KEYS": "client-key"}
        headers = {"Authorization": "Bearer client-key"}
        text = text.replace("poll_interval = 1.0", "poll_interval = 0.01")
    assert real in text
    async with TestServer(app, host="127.0.0.1") as server:
        yield text.replace(real, str(server.make_url(path)).rstrip("/")), environ, headers


@pytest.mark.parametrize("example", ["echo", "ollama", "openai-compatible", "vlm-agent"])
async def test_every_listed_model_and_the_banner_model_answer(
    example: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # echo.toml keeps files in ./translator-data
    async with _upstream(example, monkeypatch) as (text, environ, headers):
        config = parse_config(text)
        pm = get_plugin_manager(entry_points=False)
        app = create_app(config, plugin_manager=pm, environ=environ)
        async with serving(app) as root, aiohttp.ClientSession(headers=headers) as session:
            async with session.get(f"{root}/v1/openai/models") as response:
                assert response.status == 200
                listed = [card["id"] for card in (await response.json())["data"]]
            assert listed, "an example should list at least one model"
            banner = _example_model(config)
            assert banner == listed[0]
            for model in listed:
                url = f"{root}/v1/openai/chat/completions"
                body: dict[str, Any] = {**HELLO, "model": model}
                async with session.post(url, json=body) as response:
                    assert response.status == 200, (model, await response.text())
                    assert (await response.json())["choices"][0]["message"]["content"]


async def test_the_ollama_example_lists_the_mapped_names_not_the_backend() -> None:
    config = parse_config((EXAMPLES / "ollama.toml").read_text())
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with (
        serving(app) as root,
        aiohttp.ClientSession() as session,
        session.get(f"{root}/v1/models") as response,
    ):
        cards = (await response.json())["data"]
    assert {c["id"]: c["owned_by"] for c in cards} == {"gpt-4o": "local", "gpt-4o-mini": "local"}


def _ollama_example_at(url: str) -> str:
    """examples/ollama.toml, pointed at a loopback Ollama."""
    text = (EXAMPLES / "ollama.toml").read_text()
    assert "http://localhost:11434" in text
    return text.replace("http://localhost:11434", url)


async def test_every_model_the_ollama_example_lists_can_be_used() -> None:
    ollama = FakeOllama(models={"llava", "llama3.2"})
    async with TestServer(ollama.app(), host="127.0.0.1") as upstream:
        config = parse_config(_ollama_example_at(str(upstream.make_url("")).rstrip("/")))
        async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
            async with session.get(f"{root}/v1/models") as response:
                listed = [m["id"] for m in (await response.json())["data"]]
            assert listed
            for model in listed:
                url = f"{root}/v1/chat/completions"
                async with session.post(url, json={**HELLO, "model": model}) as response:
                    assert response.status == 200, (model, await response.text())


async def test_the_serve_banner_example_works_for_the_ollama_example(tmp_path: Path) -> None:
    ollama = FakeOllama(models={"llava", "llama3.2"})
    async with TestServer(ollama.app(), host="127.0.0.1") as upstream:
        config = tmp_path / "ollama.toml"
        config.write_text(_ollama_example_at(str(upstream.make_url("")).rstrip("/")))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "translator", "serve", "--port", "0", "--config", str(config)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert process.stdout is not None
            banner = ""
            while "python -c" not in banner:
                line = await asyncio.wait_for(process.stdout.readline(), 30)
                assert line, f"the server exited early: {banner}"
                banner += line.decode()
            base = banner.split("OpenAI base URL: ", 1)[1].split()[0]
            body = json.loads(banner.split("    -d '", 1)[1].split("'\n", 1)[0])
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{base}/chat/completions", json=body) as response,
            ):
                assert response.status == 200, await response.text()
        finally:
            process.kill()
            await process.wait()
