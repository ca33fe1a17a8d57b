"""Matrix-aware routing: a backend whose matrix refuses the request is never called.

Two fake Ollama hosts on loopback behind one route, the first configured to
refuse images: a request with an image goes to the second without calling the
first; a text request goes to the first.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.ollama_server import PNG, FakeOllama
from tests.routing_upstreams import routed_server
from translator.server import DISPATCHER

IMAGE = "data:image/png;base64," + base64.b64encode(PNG).decode()
WITH_IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": IMAGE}},
        ],
    }
]
TEXT = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def hosts() -> AsyncIterator[dict[str, tuple[FakeOllama, str]]]:
    found: dict[str, tuple[FakeOllama, str]] = {}
    servers = []
    for name in ("text_only", "vision"):
        fake = FakeOllama()
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        found[name] = (fake, str(server.make_url("")))
    yield found
    for server in servers:
        await server.close()


def config(hosts: dict[str, tuple[FakeOllama, str]], text_only: str = "") -> str:
    return f"""
[backends.ollama-text-only]
plugin = "ollama"
base_url = "{hosts["text_only"][1]}"
retries = 0
matrix = {{ "content.image_url" = "rejected" }}
{text_only}
[backends.ollama-text-only.options]
models = {{ "m" = "qwen3" }}

[backends.ollama-vision]
plugin = "ollama"
base_url = "{hosts["vision"][1]}"
retries = 0
[backends.ollama-vision.options]
models = {{ "m" = "llava" }}

[[routes]]
model = "m"
backends = ["ollama-text-only", "ollama-vision"]
"""


async def test_an_image_goes_to_the_backend_that_takes_images(
    hosts: dict[str, tuple[FakeOllama, str]],
) -> None:
    text_only, vision = hosts["text_only"][0], hosts["vision"][0]
    async with routed_server(config(hosts)) as (_, client):
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=WITH_IMAGE)
        reply = raw.parse()
        assert raw.headers["x-translator-backend"] == "ollama-vision"
        assert raw.headers["x-translator-attempts"] == "ollama-vision"
        assert text_only.requests == []  # never called
        assert vision.requests[0]["model"] == "llava"
        assert "1 image: png" in (reply.choices[0].message.content or "")
        # A text request is taken by the first backend, as the route orders.
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=TEXT)
        assert raw.headers["x-translator-backend"] == "ollama-text-only"
        assert text_only.requests[0]["model"] == "qwen3"


async def test_when_no_backend_takes_it_the_first_ones_rejection_is_the_answer(
    hosts: dict[str, tuple[FakeOllama, str]],
) -> None:
    # Both refuse logprobs: the client gets the same 400, with the same param, as
    # from a route of the first backend alone.
    async with routed_server(config(hosts)) as (app, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", messages=TEXT, logprobs=True)
        health = app[DISPATCHER].health.snapshot()
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "logprobs"
    assert "ollama-text-only" in body["message"]
    assert hosts["text_only"][0].requests == hosts["vision"][0].requests == []
    assert all(state.failures == 0 for state in health.values())


async def test_a_backend_that_would_drop_fields_goes_after_one_that_keeps_them(
    hosts: dict[str, tuple[FakeOllama, str]],
) -> None:
    # The first backend ignores `seed`; the second keeps it, so it is tried first.
    text_only = 'matrix = { "content.image_url" = "rejected", seed = "ignored" }\n'
    cfg = config(hosts).replace('matrix = { "content.image_url" = "rejected" }\n', text_only)
    async with routed_server(cfg) as (_, client):
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=TEXT, seed=7
        )
    assert raw.headers["x-translator-backend"] == "ollama-vision"
    assert "x-translator-ignored" not in raw.headers
    assert hosts["vision"][0].requests[0]["options"]["seed"] == 7


async def test_a_session_holding_an_image_stays_with_the_backend_that_takes_images(
    hosts: dict[str, tuple[FakeOllama, str]],
) -> None:
    text_only, vision = hosts["text_only"][0], hosts["vision"][0]
    session = {"session_id": "s-img"}
    async with routed_server(config(hosts)) as (_, client):
        await client.chat.completions.create(model="m", messages=WITH_IMAGE, extra_body=session)
        # A text turn alone would suit the first backend, but the history it joins
        # holds the image: the first backend's matrix refuses it, uncalled.
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "And its colour?"}], extra_body=session
        )
    assert raw.headers["x-translator-backend"] == "ollama-vision"
    assert raw.headers["x-translator-attempts"] == "ollama-vision"
    assert text_only.requests == []
    assert len(vision.requests) == 2
    assert len(vision.requests[1]["messages"]) == 3  # the image turn, its answer, the new turn
