"""The fake Ollama checked against the official ``ollama`` client.

The client must read the fake's replies, streams and errors as it reads
Ollama's, and for the same conversation it must send the body the backend
sends: both checks keep the fake (and so the backend's tests) faithful.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from translator_plugins.ollama import OllamaBackend

from tests.ollama_server import PNG, FakeOllama, Script
from translator import Translator
from translator._backend import BackendContext
from translator._fetch import MediaFetcher
from translator._http import HttpClient

ollama = pytest.importorskip("ollama")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOllama, Any, str]]:
    server_fake = FakeOllama()
    server = TestServer(server_fake.app(), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    client = ollama.AsyncClient(host=base_url, trust_env=False)
    yield server_fake, client, base_url
    await client.close()
    await server.close()


async def test_the_client_reads_a_reply(fake: tuple[FakeOllama, Any, str]) -> None:
    _, client, _ = fake
    reply = await client.chat(model="llava", messages=[{"role": "user", "content": "Hi you"}])
    assert reply.message.content == "Hi you"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert (reply.prompt_eval_count, reply.eval_count) == (2, 2)


async def test_the_client_reads_a_stream_and_tool_calls(fake: tuple[FakeOllama, Any, str]) -> None:
    server_fake, client, _ = fake
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    server_fake.scripts.append(Script("Let me check", tool_calls=[call]))
    parts = [
        part
        async for part in await client.chat(
            model="llava", messages=[{"role": "user", "content": "Weather?"}], stream=True
        )
    ]
    assert "".join(p.message.content or "" for p in parts) == "Let me check"
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert [p.done for p in parts].count(True) == 1
    assert parts[-1].done_reason == "stop"


async def test_the_client_reads_errors(fake: tuple[FakeOllama, Any, str]) -> None:
    server_fake, client, _ = fake
    with pytest.raises(ollama.ResponseError) as missing:
        await client.chat(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.status_code == 404
    assert missing.value.error == 'model "nope" not found, try pulling it first'
    server_fake.scripts.append(Script("a b c", error_after=1))
    with pytest.raises(ollama.ResponseError, match="an error was encountered"):
        async for _ in await client.chat(
            model="llava", messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            pass


async def test_the_backend_sends_what_the_client_sends(fake: tuple[FakeOllama, Any, str]) -> None:
    server_fake, client, base_url = fake
    await client.chat(
        model="llava",
        messages=[
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Weather here?", "images": [PNG]},
        ],
        tools=[TOOL],
        format=SCHEMA,
        options={"num_predict": 20, "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop": ["}"]},
        stream=False,
    )
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {
        "model": "llava",
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": uri}},
                ],
            },
        ],
        "tools": [TOOL],
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}},
        "max_tokens": 20,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 3,
        "stop": "}",
    }
    http = HttpClient()
    backend = OllamaBackend(http.bind("ollama"), MediaFetcher(), base_url=base_url)
    async with Translator({"ollama": backend}, context=BackendContext(http)) as translator:
        await translator.complete(json.dumps(body).encode(), "ollama")
    from_client, from_backend = server_fake.requests
    assert from_backend == from_client
