"""The ollama backend against ``aioresponses``: exactly what goes out, and what comes back."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import translator_plugins.ollama
from aioresponses import aioresponses
from yarl import URL

from tests.ollama_server import PNG
from translator import Translator
from translator._backend import BackendSettings
from translator._http import client as http_module
from translator._plugins import get_plugin_manager
from translator.errors import FetchRefusedError, UpstreamStatusError

CHAT = "http://ollama.test:11434/api/chat"


@pytest.fixture
async def translator() -> AsyncIterator[Translator]:
    settings = BackendSettings(
        plugin="ollama",
        base_url="http://ollama.test:11434/",
        retries=0,
        api_key="sk-local",
        options={"models": {"gpt-4o-mini": "qwen3:8b"}},
    )
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[translator_plugins.ollama])
    async with Translator.from_settings({"ollama": settings}, plugin_manager=pm) as t:
        yield t


def ask(content: Any, **fields: Any) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **fields}
    return json.dumps(body).encode()


def sent(mocked: Any, url: str = CHAT) -> list[dict[str, Any]]:
    calls = mocked.requests.get(("POST", URL(url)), [])
    return [json.loads(call.kwargs["data"]) for call in calls]


def line(content: str = "", **fields: Any) -> bytes:
    body = {"model": "qwen3:8b", "message": {"role": "assistant", "content": content}}
    return json.dumps({**body, "done": False, **fields}).encode() + b"\n"


async def test_the_request_that_goes_out(translator: Translator) -> None:
    reply = line("Hi!", done=True, done_reason="stop", prompt_eval_count=5, eval_count=2)
    with aioresponses() as mocked:
        mocked.post(CHAT, body=reply, content_type="application/json")
        done = await translator.complete(ask("Hello", temperature=0), "ollama")
        [body] = sent(mocked)
        [call] = mocked.requests[("POST", URL(CHAT))]
    assert body == {
        "model": "qwen3:8b",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": False,
        "options": {"temperature": 0},
    }
    assert call.kwargs["headers"]["Authorization"] == "Bearer sk-local"
    assert done.response.model == "gpt-4o-mini"
    assert done.response.choices[0].message.content == "Hi!"
    assert done.response.usage.total_tokens == 7


async def test_an_ndjson_stream(translator: Translator) -> None:
    ndjson = b"".join(
        [
            line("Hel"),
            line("lo"),
            b"\n",
            line(done=True, done_reason="stop", prompt_eval_count=5, eval_count=2),
        ]
    )
    with aioresponses() as mocked:
        mocked.post(CHAT, body=ndjson, content_type="application/x-ndjson")
        stream = await translator.stream(
            ask("Hello", stream=True, stream_options={"include_usage": True}), "ollama"
        )
        chunks = [c async for c in stream]
        [body] = sent(mocked)
    assert body["stream"] is True
    assert [c.choices[0].delta.content for c in chunks[:2]] == ["Hel", "lo"]
    assert chunks[2].choices[0].finish_reason == "stop"
    assert chunks[3].usage is not None
    assert chunks[3].usage.total_tokens == 7  # type: ignore[union-attr]
    assert len(chunks) == 4


async def test_an_image_url_is_fetched_and_sent_as_base64(translator: Translator) -> None:
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}},
        {"type": "image_url", "image_url": {"url": "https://images.example/dog.png"}},
    ]
    with aioresponses() as mocked:
        mocked.get("https://images.example/cat.png", body=PNG, content_type="image/png")
        mocked.get("https://images.example/dog.png", body=PNG[:20], content_type="image/png")
        mocked.post(CHAT, body=line("A cat.", done=True), content_type="application/json")
        await translator.complete(ask(parts), "ollama")
        [body] = sent(mocked)
    assert body["messages"][0] == {
        "role": "user",
        "content": "What is it?",
        "images": [base64.b64encode(PNG).decode(), base64.b64encode(PNG[:20]).decode()],
    }


async def test_a_loopback_image_url_makes_no_request_at_all(translator: Translator) -> None:
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:8080/admin.png"}},
    ]
    with aioresponses() as mocked:
        mocked.post(CHAT, body=line("never", done=True), content_type="application/json")
        with pytest.raises(FetchRefusedError) as info:
            await translator.complete(ask(parts), "ollama")
        assert mocked.requests == {}
    assert info.value.param == "messages[0].content[1].image_url.url"
    assert info.value.to_openai()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid options: num_ctx", 400),
        (404, 'model "qwen3:8b" not found, try pulling it first', 404),
        (500, "llama runner process has terminated", 502),
    ],
)
async def test_error_bodies_keep_ollamas_message(
    translator: Translator, status: int, message: str, expected: int
) -> None:
    with aioresponses() as mocked:
        mocked.post(CHAT, status=status, payload={"error": message})
        with pytest.raises(UpstreamStatusError) as info:
            await translator.complete(ask("Hi"), "ollama")
    assert info.value.status == expected
    assert message in info.value.message


async def test_a_chat_creates_nothing_so_a_gateway_error_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_module, "_sleep", _no_pause)
    settings = BackendSettings(plugin="ollama", base_url="http://ollama.test:11434", retries=2)
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[translator_plugins.ollama])
    reply = line("Hi!", done=True, done_reason="stop", prompt_eval_count=5, eval_count=2)
    async with Translator.from_settings({"ollama": settings}, plugin_manager=pm) as translator:
        with aioresponses() as mocked:
            mocked.post(CHAT, status=502, body=b"bad gateway")
            mocked.post(CHAT, status=504, body=b"gateway timeout")
            mocked.post(CHAT, body=reply, content_type="application/json")
            done = await translator.complete(ask("Hello"), "ollama")
            assert len(sent(mocked)) == 3
    assert done.response.choices[0].message.content == "Hi!"


@pytest.mark.parametrize("status", [401, 403])
async def test_a_proxy_refusing_our_key_is_a_502(translator: Translator, status: int) -> None:
    with aioresponses() as mocked:
        mocked.post(CHAT, status=status, payload={"error": "bad key sk-local"})
        with pytest.raises(UpstreamStatusError) as info:
            await translator.complete(ask("Hi"), "ollama")
    error = info.value.to_openai()["error"]
    assert (info.value.status, error["code"]) == (502, "upstream_authentication_failed")
    assert "sk-local" not in error["message"]


async def _no_pause(delay: float) -> None:
    return None
