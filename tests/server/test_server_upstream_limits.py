"""Limits between the client, the server and the upstream, end to end with the
official SDK: Retry-After against the deadline, the reply size cap, request
encodings, and each key's share of the file store."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import openai
import pytest
from aiohttp import web

from tests.raw_http import RawClient, post_json
from translator.config import parse_config
from translator.server import create_app, serving

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def completion(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start an OpenAI-compatible upstream on loopback answering with a handler."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


def translator_config(base_url: str, extra: str = "", timeout: float = 30.0) -> str:
    return (
        f"[server.limits]\nrequest_timeout = {timeout}\n"
        f'[backends.up]\nplugin = "openai-compatible"\nbase_url = "{base_url}"\n{extra}'
    )


async def test_a_retry_after_past_the_deadline_is_answered_at_once_with_its_retry_after(
    upstream: Callable[[Handler], Awaitable[str]],
) -> None:
    calls = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(
            {"error": {"message": "slow down", "type": "rate_limit"}},
            status=429,
            headers={"Retry-After": "20"},
        )

    config = parse_config(translator_config(await upstream(busy), timeout=3.0))
    async with serving(create_app(config)) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(**HELLO)  # type: ignore[call-overload]
        elapsed = time.monotonic() - started
        await client.close()
    assert elapsed < 2.0  # not waited out into a 504 at the 3 s deadline
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "20"
    assert calls == 1


async def test_a_retry_after_within_the_deadline_is_waited_and_retried(
    upstream: Callable[[Handler], Awaitable[str]],
) -> None:
    calls = 0

    async def once_busy(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({}, status=429, headers={"Retry-After": "0.3"})
        return web.json_response(completion("done"))

    config = parse_config(translator_config(await upstream(once_busy), timeout=5.0))
    async with serving(create_app(config)) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
        answer = await client.chat.completions.create(**HELLO)  # type: ignore[call-overload]
        await client.close()
    assert answer.choices[0].message.content == "done"
    assert calls == 2


async def test_every_503_the_client_gets_says_retry_after(
    upstream: Callable[[Handler], Awaitable[str]],
) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "down"}}, status=503)

    config = parse_config(translator_config(await upstream(down), "retries = 0\n"))
    async with serving(create_app(config)) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**HELLO)  # type: ignore[call-overload]
        await client.close()
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize("length", ["declared", "chunked"])
async def test_an_upstream_reply_over_the_cap_is_a_clear_502(
    upstream: Callable[[Handler], Awaitable[str]], length: str
) -> None:
    huge = json.dumps(completion("x" * 2_000_000)).encode()

    async def flood(request: web.Request) -> web.StreamResponse:
        if length == "declared":
            return web.Response(body=huge, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(huge), 65536):
            await response.write(huge[i : i + 65536])
        await response.write_eof()
        return response

    config = parse_config(translator_config(await upstream(flood), "max_reply_bytes = 100000\n"))
    async with serving(create_app(config)) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(**HELLO)  # type: ignore[call-overload]
        await client.close()
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "upstream_reply_too_large"
    assert "100000 bytes" in error["message"]


@pytest.mark.parametrize("plugin", ["openai-compatible", "ollama"])
async def test_a_streamed_reply_over_the_cap_is_a_clear_502(plugin: str) -> None:
    """A stream answered with one huge JSON body, or one NDJSON line that never ends."""

    async def flood(request: web.Request) -> web.StreamResponse:
        kind = "application/json" if plugin == "openai-compatible" else "application/x-ndjson"
        response = web.StreamResponse(headers={"Content-Type": kind})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):  # 2.6 MB, never a newline
            await response.write(b"x" * 65536)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", flood)
    app.router.add_post("/api/chat", flood)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}" + ("/v1" if plugin != "ollama" else "")
    config = parse_config(
        f'[backends.up]\nplugin = "{plugin}"\nbase_url = "{base}"\nmax_reply_bytes = 100000\n'
    )
    try:
        async with serving(create_app(config)) as root:
            client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(stream=True, **HELLO)  # type: ignore[call-overload]
            await client.close()
    finally:
        await runner.cleanup()
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict)
    assert "100000 bytes" in error["message"]


@pytest.mark.parametrize("encoding", ["x-chaos", "br", "zstd", "gzip, gzip", "compress"])
async def test_a_body_in_an_encoding_not_supported_is_a_415(encoding: str) -> None:
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "x"}]})
    async with serving(create_app()) as root:
        client = await RawClient.connect(root)
        await client.send(
            post_json("/v1/chat/completions", body.encode(), {"Content-Encoding": encoding})
        )
        answer = await client.answer()
        await client.close()
    assert answer is not None
    assert answer.status == 415
    error = answer.error()
    assert error["code"] == "unsupported_content_encoding"
    assert "install" not in error["message"].lower()


async def test_each_key_has_its_own_share_of_the_file_store() -> None:
    config = parse_config(
        '[server]\napi_keys = ["key-a", "key-b"]\n'
        "[server.limits]\nmax_file_bytes_per_key = 1000\nmax_files_per_key = 3\n"
    )
    async with serving(create_app(config)) as root:
        a = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="key-a", max_retries=0)
        b = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="key-b", max_retries=0)
        await a.files.create(file=("one.txt", io.BytesIO(b"a" * 600)), purpose="assistants")
        with pytest.raises(openai.APIStatusError) as caught:
            await a.files.create(file=("two.txt", io.BytesIO(b"a" * 600)), purpose="assistants")
        assert caught.value.status_code == 413
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["code"] == "file_quota_exceeded"
        assert "1000 bytes" in error["message"]
        assert "quota" in error["message"]
        # Key A being at its quota leaves key B's room untouched.
        uploaded = await b.files.create(file=("b.txt", io.BytesIO(b"four")), purpose="assistants")
        assert uploaded.bytes == 4
        for name in ("c.txt", "d.txt"):
            await b.files.create(file=(name, io.BytesIO(b"x")), purpose="assistants")
        with pytest.raises(openai.APIStatusError) as caught:
            await b.files.create(file=("e.txt", io.BytesIO(b"x")), purpose="assistants")
        assert caught.value.status_code == 413
        assert "3 files" in str(caught.value.body)
        await a.close()
        await b.close()


async def test_an_encoded_body_left_unread_is_dropped_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(create_app()) as root:
        client = await RawClient.connect(root)
        # Refused before its body is read (not multipart); the body is no gzip at all.
        await client.send(post_json("/v1/files", b'{"not": "gzip"}', {"Content-Encoding": "gzip"}))
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 415
        assert await client.closed()
        await client.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
