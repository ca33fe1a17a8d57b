"""``/metrics``: the real server driven by the OpenAI SDK, then scraped and parsed.

Backends are the echo backend and an openai-compatible backend talking to a
loopback upstream that the tests script (slow, failing, streaming).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.metrics_scrape import Scrape, scrape
from tests.plugins.openai_compat.test_openai_compat import (
    COMPLETION,
    STREAM,
    Upstream,
    json_reply,
    running_upstream,
    slow_reply,
)
from tests.serve_async import serve_process
from translator._fetch import MediaFetcher
from translator._plugins import get_plugin_manager
from translator._telemetry import WATCH
from translator.config import ConfigError, parse_config
from translator.errors import FetchRefusedError
from translator.server import create_app, serving
from translator.server._metrics import Metrics
from translator.server._observe import Observer, RequestWatch

CONFIG = """
default_backend = "echo"

[server.observability]
{observability}

[backends.echo]
plugin = "echo"
matrix = {{max_tokens = "ignored", seed = "rejected"}}

[backends.up]
plugin = "openai-compatible"
base_url = "{base_url}"
api_key = "sk-upstream-secret"
retries = 1
read_timeout = 0.5

[[routes]]
model = "echo"
backend = "echo"

[[routes]]
model = "up-*"
backend = "up"
"""

HELLO = [{"role": "user", "content": "Hello"}]
UNAVAILABLE = {"error": {"message": "overloaded", "type": "server_error"}}


def config_for(upstream: Upstream, observability: str = "") -> str:
    return CONFIG.format(base_url=upstream.base_url, observability=observability)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


@pytest.fixture
async def root(upstream: Upstream) -> AsyncIterator[str]:
    pm = get_plugin_manager(entry_points=False)
    app = create_app(parse_config(config_for(upstream)), plugin_manager=pm)
    async with serving(app) as url:
        yield url


@pytest.fixture
async def sdk(root: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{root}/v1/openai", api_key="unused", max_retries=0)
    yield client
    await client.close()


CHAT = "/v1/openai/chat/completions"


async def test_counters_and_histograms_move_with_what_requests_did(
    root: str, sdk: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    # A dropped field: max_tokens is ignored by this echo backend.
    await sdk.chat.completions.create(model="echo", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    # A matrix rejection: seed is rejected.
    with pytest.raises(openai.BadRequestError) as rejected:
        await sdk.chat.completions.create(model="echo", messages=HELLO, seed=1)  # type: ignore[arg-type]
    assert rejected.value.body["param"] == "seed"  # type: ignore[index]
    # An upstream timeout (the upstream takes longer than read_timeout).
    upstream.then(slow_reply(3))
    with pytest.raises(openai.APIStatusError) as timed_out:
        await sdk.chat.completions.create(model="up-1", messages=HELLO)  # type: ignore[arg-type]
    assert timed_out.value.status_code == 504
    # A 503 retried once, then an answer with reported usage.
    upstream.then(json_reply(UNAVAILABLE, 503), json_reply(COMPLETION))
    answer = await sdk.chat.completions.create(model="up-2", messages=HELLO)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Hi there"
    # A stream with usage.
    upstream.then(upstream.sse(STREAM))
    stream = await sdk.chat.completions.create(
        model="up-3",
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello"

    found = await scrape(root)

    requests = "translator_requests_total"
    assert found.value(requests, route=CHAT, model="echo", backend="echo", status="200") == 1
    assert found.value(requests, route=CHAT, model="echo", backend="echo", status="400") == 1
    assert found.value(requests, route=CHAT, model="up-*", backend="up", status="504") == 1
    assert found.value(requests, route=CHAT, model="up-*", backend="up", status="200") == 2
    duration = "translator_request_duration_seconds_count"
    assert found.value(duration, route=CHAT, backend="up") == 3
    # The timed-out request took at least read_timeout.
    slow = found.value("translator_request_duration_seconds_bucket", backend="up", le="0.25")
    assert slow <= 2

    fields = "translator_matrix_fields_total"
    assert found.value(fields, backend="echo", field="max_tokens", action="ignored") == 1
    rejections = "translator_matrix_rejections_total"
    assert found.value(rejections, backend="echo", field="seed") == 1

    errors = "translator_upstream_errors_total"
    assert found.value(errors, backend="up", kind="timeout") == 1
    assert found.value(errors) == 1
    assert found.value("translator_upstream_retries_total", backend="up", reason="503") == 1
    # Four attempts reached the upstream: the timeout, the 503, its retry, the stream.
    assert found.value("translator_upstream_request_duration_seconds_count", backend="up") == 4

    tokens = "translator_tokens_total"
    assert found.value(tokens, backend="up", direction="input", source="reported") == 5 + 3
    assert found.value(tokens, backend="up", direction="output", source="reported") == 2 + 2
    assert found.value(tokens, backend="echo", direction="output", source="estimated") >= 1
    assert found.value(tokens, backend="echo", source="reported") == 0

    ttft = "translator_time_to_first_token_seconds_count"
    assert found.value(ttft, backend="up", model="up-*") == 1
    assert found.value(ttft, backend="echo") == 0
    assert found.value("translator_streams_in_progress", backend="up") == 0


async def test_a_stream_without_usage_counts_its_tokens_out_as_estimated(
    root: str, sdk: openai.AsyncOpenAI
) -> None:
    stream = await sdk.chat.completions.create(model="echo", messages=HELLO, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    found = await scrape(root)
    tokens = "translator_tokens_total"
    out = found.value(tokens, backend="echo", direction="output", source="estimated")
    assert out == max(1, (len(text) + 3) // 4)
    assert found.value(tokens, direction="input") == 0  # unknown: not made up
    assert found.value(tokens, source="reported") == 0


async def test_a_client_cannot_make_up_label_values(root: str, sdk: openai.AsyncOpenAI) -> None:
    for i in range(5):  # unrouted names go to the default backend
        await sdk.chat.completions.create(model=f"made-up-{i}", messages=HELLO)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        for path in ("/no/such/path/1", "/no/such/path/2"):
            async with session.get(f"{root}{path}") as response:
                assert response.status == 404
    found = await scrape(root)
    models = found.label_values("translator_requests_total", "model")
    assert not any(m.startswith("made-up") for m in models)
    assert found.value("translator_requests_total", model="unrouted", backend="echo") == 5
    routes = found.label_values("translator_requests_total", "route")
    assert not any("no/such" in r for r in routes)
    assert found.value("translator_requests_total", route="unmatched", status="404") == 2


async def test_a_stream_counts_as_in_progress_until_it_ends(
    root: str, sdk: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    upstream.then(upstream.endless())
    stream = await sdk.chat.completions.create(model="up-1", messages=HELLO, stream=True)  # type: ignore[arg-type]
    first = await anext(aiter(stream))
    assert first.choices[0].delta.content == "first"
    during = await scrape(root)
    assert during.value("translator_streams_in_progress", backend="up") == 1
    await stream.close()
    await asyncio.wait_for(upstream.disconnected.wait(), 5)
    for _ in range(100):
        after = await scrape(root)
        if after.value("translator_streams_in_progress", backend="up") == 0:
            break
        await asyncio.sleep(0.02)
    assert after.value("translator_streams_in_progress", backend="up") == 0


async def test_a_client_that_goes_away_is_counted_as_499(root: str, upstream: Upstream) -> None:
    upstream.then(slow_reply(3))
    body = {"model": "up-1", "messages": HELLO}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
        with pytest.raises(TimeoutError):
            await session.post(f"{root}/v1/chat/completions", json=body)
    for _ in range(100):
        found = await scrape(root)
        if found.value("translator_requests_total", status="499"):
            break
        await asyncio.sleep(0.02)
    assert found.value("translator_requests_total", model="up-*", backend="up", status="499") == 1
    assert found.value("translator_upstream_errors_total") == 0


async def test_store_operations_are_counted(root: str, sdk: openai.AsyncOpenAI) -> None:
    extra = {"session_id": "s-1"}
    await sdk.chat.completions.create(model="echo", messages=HELLO, extra_body=extra)  # type: ignore[arg-type]
    await sdk.files.create(file=("a.txt", b"hello"), purpose="user_data")
    found = await scrape(root)
    stores = "translator_store_operations_total"
    assert found.value(stores, store="sessions", operation="load", outcome="ok") == 1
    assert found.value(stores, store="sessions", operation="append", outcome="ok") == 1
    assert found.value(stores, store="files", operation="put", outcome="ok") == 1


async def test_metrics_ask_for_their_own_key_not_an_api_key(upstream: Upstream) -> None:
    config = parse_config(config_for(upstream, 'metrics_key_env = "TEST_METRICS_KEY"'))
    config.server.api_keys = ["api-key-1"]
    environ = {"TEST_METRICS_KEY": "metrics-secret"}
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False), environ=environ)
    async with serving(app) as root, aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer api-key-1"}):
            async with session.get(f"{root}/metrics", headers=headers) as response:
                assert response.status == 401
                body = await response.json()
                assert "metrics key" in body["error"]["message"]
        found = await scrape(root, {"Authorization": "Bearer metrics-secret"})
        assert found.value("translator_requests_total", route="/metrics", status="401") == 2
    with pytest.raises(ConfigError, match="TEST_METRICS_KEY"):
        create_app(config, plugin_manager=get_plugin_manager(entry_points=False), environ={})


async def test_metrics_are_open_beside_api_keys_unless_a_metrics_key_is_set(
    upstream: Upstream,
) -> None:
    config = parse_config(config_for(upstream))
    config.server.api_keys = ["api-key-1"]
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root, aiohttp.ClientSession() as session:
        async with session.get(f"{root}/v1/models") as response:
            assert response.status == 401
        found = await scrape(root)
        assert found.value("translator_requests_total", route="/v1/models", status="401") == 1
        async with session.get(f"{root}/v1/metrics") as response:
            assert response.status == 401  # /metrics lives at the root only


async def test_metrics_off_means_no_route(upstream: Upstream) -> None:
    config = parse_config(config_for(upstream, "metrics = false"))
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with (
        serving(app) as root,
        aiohttp.ClientSession() as session,
        session.get(f"{root}/metrics") as response,
    ):
        assert response.status == 404


# -- several processes ---------------------------------------------------------


async def test_two_processes_share_one_view_through_the_multiprocess_directory(
    tmp_path: Path,
) -> None:
    """What ``--workers`` sets up: each process writes its counts to the shared
    directory, and a scrape of either adds up both."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        'default_backend = "echo"\n[backends.echo]\nplugin = "echo"\n'
        '[[routes]]\nmodel = "echo"\nbackend = "echo"\n'
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    async with serve_process(config, env) as first, serve_process(config, env) as second:
        for count, server in ((1, first), (2, second)):
            client = openai.AsyncOpenAI(base_url=f"{server.root}/v1", api_key="x", max_retries=0)
            for _ in range(count):
                await client.chat.completions.create(model="echo", messages=HELLO)  # type: ignore[arg-type]
            await client.close()
        views: list[Scrape] = [await scrape(server.root) for server in (first, second)]
    for view in views:
        assert view.value("translator_requests_total", model="echo", status="200") == 3
        assert view.value("translator_request_duration_seconds_count", model="echo") == 3


async def test_the_media_fetcher_counts_bytes_and_refusals() -> None:
    """The fetcher reports to the request's watch: bytes read, and each refusal's kind."""
    image = b"\x89PNG" + b"x" * 996

    async def png(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    app = web.Application()
    app.router.add_get("/a.png", png)
    metrics = Metrics()
    watch = RequestWatch(Observer(metrics=metrics, tracing=None, access_log=False))
    token = WATCH.set(watch)
    fetcher = MediaFetcher(allow=["127.0.0.1"])
    try:
        async with TestServer(app, host="127.0.0.1") as server:
            fetched = await fetcher.fetch(str(server.make_url("/a.png")), param="p")
            assert fetched.data == image
            with pytest.raises(FetchRefusedError):
                await fetcher.fetch("ftp://example.com/a.png", param="p")
            with pytest.raises(FetchRefusedError):
                await fetcher.fetch(str(server.make_url("/missing.png")), param="p")
    finally:
        WATCH.reset(token)
        await fetcher.aclose()
    found = Scrape(metrics.render().decode())
    assert found.value("translator_media_fetched_bytes_total") == len(image)
    assert found.value("translator_media_fetch_refusals_total", reason="refused") == 1
    assert found.value("translator_media_fetch_refusals_total", reason="failed") == 1


async def test_a_fallback_counts_the_failed_backend_and_the_one_that_answered(
    upstream: Upstream,
) -> None:
    config = (
        config_for(upstream)
        + f"""
[backends.up2]
plugin = "openai-compatible"
base_url = "{upstream.base_url}"
retries = 0

[[routes]]
model = "pair"
backends = ["up", "up2"]
"""
    )
    config = config.replace("retries = 1", "retries = 0")
    app = create_app(parse_config(config), plugin_manager=get_plugin_manager(entry_points=False))
    upstream.then(json_reply(UNAVAILABLE, 503), json_reply(COMPLETION))
    async with serving(app) as root:
        sdk = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="x", max_retries=0)
        answer = await sdk.chat.completions.create(model="pair", messages=HELLO)  # type: ignore[arg-type]
        await sdk.close()
        assert answer.choices[0].message.content == "Hi there"
        found = await scrape(root)
    requests = "translator_requests_total"
    assert found.value(requests, model="pair", backend="up2", status="200") == 1
    assert found.value(requests, model="pair", backend="up") == 0
    assert found.value("translator_upstream_errors_total", backend="up", kind="5xx") == 1
    assert found.value("translator_upstream_errors_total", backend="up2") == 0
    attempts = "translator_upstream_request_duration_seconds_count"
    assert (found.value(attempts, backend="up"), found.value(attempts, backend="up2")) == (1, 1)


def test_the_readme_lists_every_metric() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.rst").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("``translator_")]
    listed = {row.split("``")[1] for row in rows}
    served = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in Metrics().registry.collect()
    }
    assert served == listed
