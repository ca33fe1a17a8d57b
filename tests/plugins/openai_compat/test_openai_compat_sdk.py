"""The official OpenAI SDK -> the translator's server -> openai-compatible -> a loopback upstream.

Everything speaks the real protocol on 127.0.0.1: the SDK talks to the
translator's server, whose openai-compatible backend talks to an upstream
that streams server-sent events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import openai
import pytest
from translator_plugins import openai_compat

from tests.plugins.openai_compat.test_openai_compat import (
    OPENAI_ERROR,
    STREAM,
    Upstream,
    json_reply,
    running_upstream,
)
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


@pytest.fixture
async def client(upstream: Upstream) -> AsyncIterator[openai.AsyncOpenAI]:
    config = f"""
default_backend = "up"

[backends.up]
plugin = "openai-compatible"
base_url = "{upstream.base_url}"
api_key = "sk-upstream"
retries = 0
matrix = {{session_id = "supported", vlmrun = "supported"}}
"""
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[openai_compat])
    app = create_app(parse_config(config), plugin_manager=pm)
    async with serving(app) as root:
        sdk = openai.AsyncOpenAI(base_url=f"{root}/v1/openai", api_key="unused", max_retries=0)
        yield sdk
        await sdk.close()


MESSAGES = [{"role": "user", "content": "Hello"}]


async def test_a_completion(client: openai.AsyncOpenAI, upstream: Upstream) -> None:
    reply = await client.chat.completions.create(
        model="my-model",
        messages=MESSAGES,  # type: ignore[arg-type]
        temperature=0,
        extra_body={"session_id": "s-1", "vlmrun": {"metadata": {"environment": "dev"}}},
    )
    assert reply.choices[0].message.content == "Hi there"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 7
    sent = upstream.bodies[0]
    assert sent["session_id"] == "s-1"
    assert sent["vlmrun"]["metadata"]["environment"] == "dev"
    assert upstream.headers[0]["Authorization"] == "Bearer sk-upstream"


async def test_a_stream(client: openai.AsyncOpenAI, upstream: Upstream) -> None:
    upstream.then(upstream.sse(STREAM))
    stream = await client.chat.completions.create(
        model="my-model",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 5


async def test_an_upstream_400_reaches_the_sdk(
    client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    upstream.then(json_reply(OPENAI_ERROR, 400))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code == 400
    assert error.body == OPENAI_ERROR["error"]
    assert error.param == "temperature"


async def test_a_stream_cut_off_is_an_error_for_the_sdk(
    client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    upstream.then(upstream.sse(STREAM[:3], abort=True))
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    got: list[str] = []

    async def drain() -> None:
        async for c in stream:
            got.append(c.choices[0].delta.content or "")

    with pytest.raises(openai.APIError, match="cut off"):
        await drain()
    assert "".join(got) == "Hel"


async def test_an_sdk_that_goes_away_closes_the_upstream(
    client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    upstream.then(upstream.endless())
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    async for chunk in stream:
        assert chunk.choices[0].delta.content == "first"
        break
    await stream.close()
    await asyncio.wait_for(upstream.disconnected.wait(), 5)


async def test_a_session_the_translator_keeps_is_not_reported_as_dropped(
    upstream: Upstream,
) -> None:
    config = f"""
default_backend = "up"

[backends.up]
plugin = "openai-compatible"
base_url = "{upstream.base_url}"
retries = 0
"""
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[openai_compat])
    app = create_app(parse_config(config), plugin_manager=pm)
    async with serving(app) as root:
        sdk = openai.AsyncOpenAI(base_url=f"{root}/v1/openai", api_key="unused", max_retries=0)
        extra = {"session_id": "s-1", "vlmrun": {"domain": "d", "metadata": {"extra": {"a": 1}}}}
        for _ in range(2):
            raw = await sdk.chat.completions.with_raw_response.create(
                model="my-model",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=5,
                extra_body=extra,
            )
        await sdk.close()
    # Only what was really dropped is named; the session is kept here and replayed.
    assert raw.headers["x-translator-ignored"] == "vlmrun.domain"
    assert raw.parse().session_id == "s-1"  # type: ignore[attr-defined]
    assert [m["content"] for m in upstream.bodies[1]["messages"]] == ["Hello", "Hi there", "Hello"]
    assert "session_id" not in upstream.bodies[1]
    assert "vlmrun" not in upstream.bodies[1]
