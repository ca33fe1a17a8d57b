"""Behaviour found broken by an audit done as a user would; each test is what should hold.

Every test here is marked ``xfail(strict=True)``: it fails today, and turns the
suite red the day its behaviour is fixed, so that whoever fixes it removes the
marker and keeps the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.ollama_server import FakeOllama
from translator.cli import main
from translator.config import parse_config
from translator.server import create_app, serving

ROOT = Path(__file__).resolve().parent.parent
OLLAMA_EXAMPLE = (ROOT / "examples" / "ollama.toml").read_text()
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def _ollama_example_at(url: str) -> str:
    """examples/ollama.toml, pointed at a loopback Ollama."""
    assert "http://localhost:11434" in OLLAMA_EXAMPLE
    return OLLAMA_EXAMPLE.replace("http://localhost:11434", url)


@pytest.mark.xfail(
    strict=True,
    reason="translate --backend openai-compatible (no config) dies with a ValueError traceback",
)
def test_translate_with_a_plugin_that_needs_settings_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"model": "m", **HELLO}))
    status = main(["translate", str(request), "--backend", "openai-compatible"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("translator: ")
    assert "base_url" in err


@pytest.mark.xfail(
    strict=True,
    reason="matrix --config with a backend its plugin refuses dies with a ValueError traceback",
)
def test_matrix_of_a_config_its_plugin_refuses_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backends.up]\nplugin = "openai-compatible"\n')
    status = main(["matrix", "--config", str(config)])
    assert status == 1
    assert capsys.readouterr().err.startswith("translator: ")


@pytest.mark.xfail(
    strict=True,
    reason="GET /v1/models lists the backend name 'local', which the ollama backend 404s on",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="serve's banner example for examples/ollama.toml uses model 'gpt-4o1', a 404",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="openai-compatible forwards a file_id uploaded to this server unchanged to an "
    "upstream that has never seen it, instead of the file itself",
)
async def test_a_file_uploaded_here_reaches_an_openai_compatible_upstream_as_its_content() -> None:
    from aiohttp import web

    seen: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        reply = {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return web.json_response(reply)

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(upstream_app, host="127.0.0.1") as upstream:
        base = str(upstream.make_url("/v1"))
        config = parse_config(f'[backends.up]\nplugin = "openai-compatible"\nbase_url = "{base}"\n')
        async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("purpose", "assistants")
            form.add_field("file", b"%PDF-1.4 hi", filename="n.pdf", content_type="application/pdf")
            async with session.post(f"{root}/v1/files", data=form) as response:
                assert response.status == 200, await response.text()
                file_id = (await response.json())["id"]
            part = {"type": "file", "file": {"file_id": file_id}}
            request = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
            async with session.post(f"{root}/v1/chat/completions", json=request) as response:
                assert response.status == 200, await response.text()
    sent = seen[0]["messages"][0]["content"][0]["file"]  # type: ignore[index]
    assert sent.get("file_id") != file_id
    assert "file_data" in sent


@pytest.mark.xfail(
    strict=True,
    reason="'Authorization: bearer KEY' is refused; the auth scheme is case-insensitive (RFC 7235)",
)
async def test_the_bearer_scheme_is_case_insensitive() -> None:
    config = parse_config('[server]\napi_keys = ["k1"]\n[backends.e]\nplugin = "echo"\n')
    async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
        for scheme in ("Bearer", "bearer", "BEARER"):
            headers = {"Authorization": f"{scheme} k1"}
            async with session.get(f"{root}/v1/models", headers=headers) as response:
                assert response.status == 200, scheme
