"""Fallback through the real server: the OpenAI SDK -> the translator -> two stand-in upstreams.

For every strategy, the upstream tried first fails (times out, answers 503 or
429, refuses connections) and the other answers: the client sees one answer
and the headers say where it came from. A client's 400 is sent elsewhere only
when ``fallback_on`` names it; a stream broken mid-way never is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tests.metrics_scrape import scrape
from tests.routing_upstreams import StandIn, backend_table, closed_url, routed_server, stand_ins
from translator.server import DISPATCHER

STRATEGIES = ["fallback", "round-robin", "least-busy", "weighted"]
FAULTS = ["timeout", "503", "429", "refused"]
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def ups() -> AsyncIterator[dict[str, StandIn]]:
    async with stand_ins("a", "b") as ups:
        yield ups


def two_backend_config(
    ups: dict[str, StandIn],
    *,
    strategy: str = "fallback",
    a_url: str | None = None,
    route: str = "",
    top: str = "",
    a_extra: dict[str, str] | None = None,
) -> str:
    weights = "weights = { a = 1, b = 1 }\n" if strategy == "weighted" else ""
    return (
        top
        + backend_table("a", a_url or ups["a"].base_url, **(a_extra or {}))
        + backend_table("b", ups["b"].base_url)
        + f'[[routes]]\nmodel = "m"\nbackends = ["a", "b"]\nstrategy = "{strategy}"\n'
        + weights
        + route
    )


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_the_other_upstream_answers_when_one_fails(
    ups: dict[str, StandIn], strategy: str, fault: str
) -> None:
    a_url = closed_url() if fault == "refused" else None
    if fault == "timeout":
        ups["a"].fault = "slow"
    elif fault != "refused":
        ups["a"].fault = fault
    # A long cool-down after one failure: "a" is tried at most once.
    top = "[routing]\ncooldown_after = 1\ncooldown_seconds = 60\n"
    route = "attempt_timeout = 0.5\n" if fault == "timeout" else ""
    config = two_backend_config(ups, strategy=strategy, a_url=a_url, route=route, top=top)
    async with routed_server(config) as (app, client):
        seen = []
        for _ in range(4):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            reply = raw.parse()
            assert reply.choices[0].message.content == "from b"
            assert raw.headers["x-translator-backend"] == "b"
            seen.append(raw.headers["x-translator-attempts"])
        health = app[DISPATCHER].health.snapshot()
    # "a" was tried first once at most (then cooled down); "b" answered every request.
    assert seen.count("a, b") <= 1
    assert seen.count("a, b") + seen.count("b") == 4
    if strategy in ("fallback", "round-robin", "weighted"):
        assert seen[0] == "a, b"  # these strategies start at "a"
    if seen[0] == "a, b":
        assert health["a"].state == "cooled_down"
    assert len(ups["b"].bodies) == 4
    assert health["b"].state == "healthy"


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_stream_falls_back_before_its_first_byte(
    ups: dict[str, StandIn], strategy: str
) -> None:
    ups["a"].fault = "503"
    async with routed_server(two_backend_config(ups, strategy=strategy)) as (app, client):
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
        await asyncio.sleep(0.05)  # the server closes its side once the stream is sent
        health = app[DISPATCHER].health.snapshot()
    assert text == "from b"
    assert health["a"].in_flight == health["b"].in_flight == 0
    assert raw.headers["x-translator-backend"] == "b"
    assert raw.headers["x-translator-attempts"] in ("a, b", "b")


async def test_a_client_error_is_not_sent_elsewhere(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "400"
    async with routed_server(two_backend_config(ups)) as (app, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
        health = app[DISPATCHER].health.snapshot()
    assert "a says 400" in caught.value.message
    assert len(ups["a"].bodies) == 1
    assert ups["b"].bodies == []
    assert health["a"].failures == 0  # the client's error says nothing of "a"


async def test_a_stream_broken_mid_way_is_not_retried(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "cut"
    async with routed_server(two_backend_config(ups)) as (app, client):
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        texts: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                texts.extend(c.delta.content or "" for c in chunk.choices)

        with pytest.raises(openai.APIError):
            await read()
        health = app[DISPATCHER].health.snapshot()
    assert texts == ["from "]  # the first chunk reached the client: no second try
    assert ups["b"].bodies == []
    assert health["a"].failures == 1
    assert health["a"].in_flight == 0  # the broken stream was closed and counted out


async def test_only_the_configured_failures_fall_back(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "429"
    config = two_backend_config(ups, route='fallback_on = ["503", "connect"]\n')
    async with routed_server(config) as (_, client):
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="m", messages=HELLO)
        ups["a"].fault = "503"
        reply = await client.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content == "from b"
    assert len(ups["b"].bodies) == 1


@pytest.mark.parametrize(
    ("fault", "name", "kind"),
    [
        ("400", "4xx", "4xx"),
        ("400", "400", "4xx"),
        ("429", "rate_limited", "rate_limited"),
        ("refused", "unavailable", "unavailable"),
    ],
)
async def test_fallback_on_takes_the_kinds_the_metric_counts(
    ups: dict[str, StandIn], fault: str, name: str, kind: str
) -> None:
    a_url = closed_url() if fault == "refused" else None
    ups["a"].fault = None if fault == "refused" else fault
    config = two_backend_config(ups, a_url=a_url, route=f'fallback_on = ["{name}"]\n')
    async with routed_server(config) as (app, client):
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
        root = str(client.base_url).rstrip("/").removesuffix("/v1")
        found = await scrape(root)
        health = app[DISPATCHER].health.snapshot()
    assert raw.parse().choices[0].message.content == "from b"
    assert raw.headers["x-translator-attempts"] == "a, b"
    assert found.value("translator_upstream_errors_total", backend="a", kind=kind) == 1
    # A client's error moves on when asked to, but says nothing of the backend.
    assert health["a"].failures == (0 if kind == "4xx" else 1)


async def test_the_last_failure_reaches_the_client_when_every_upstream_fails(
    ups: dict[str, StandIn],
) -> None:
    ups["a"].fault = ups["b"].fault = "503"
    async with routed_server(two_backend_config(ups)) as (_, client):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert caught.value.status_code == 503
    assert "b says 503" in caught.value.message
    assert len(ups["a"].bodies) == len(ups["b"].bodies) == 1


async def test_a_cooled_down_upstream_is_skipped_then_probed_and_back(
    ups: dict[str, StandIn],
) -> None:
    ups["a"].fault = "503"
    top = "[routing]\ncooldown_after = 2\ncooldown_seconds = 0.4\n"
    async with routed_server(two_backend_config(ups, top=top)) as (app, client):
        health = app[DISPATCHER].health

        async def attempts() -> str:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            return raw.headers["x-translator-attempts"]

        assert [await attempts(), await attempts()] == ["a, b", "a, b"]
        assert health.snapshot()["a"].state == "cooled_down"
        assert await attempts() == "b"  # skipped while cooled down
        assert len(ups["a"].bodies) == 2
        await asyncio.sleep(0.45)
        assert health.snapshot()["a"].state == "half_open"
        assert await attempts() == "a, b"  # the probe fails: cooled down again
        assert health.snapshot()["a"].state == "cooled_down"
        await asyncio.sleep(0.45)
        ups["a"].fault = None
        assert await attempts() == "a"  # the probe succeeds: healthy again
        assert health.snapshot()["a"].state == "healthy"
        assert await attempts() == "a"


async def test_one_deadline_covers_every_attempt(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "slow"
    top = "[server.limits]\nrequest_timeout = 0.6\n"
    async with routed_server(two_backend_config(ups, top=top)) as (_, client):
        start = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
        took = time.monotonic() - start
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "request_timeout"
    assert took < 2.0
    assert ups["b"].bodies == []  # no time was left for it


async def test_each_attempt_gets_at_most_what_remains(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = ups["b"].fault = "slow"
    ups["a"].delay = ups["b"].delay = 5.0
    top = "[server.limits]\nrequest_timeout = 0.8\n"
    route = "attempt_timeout = 0.5\n"
    async with routed_server(two_backend_config(ups, top=top, route=route)) as (_, client):
        start = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
        took = time.monotonic() - start
    # "a" had 0.5 s, "b" the 0.3 s left: the request's deadline ended it.
    assert caught.value.status_code == 504
    assert 0.7 < took < 2.0
    assert len(ups["b"].bodies) == 1


async def test_each_backend_is_sent_its_own_model_name(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "503"
    route = 'models = { a = "a-model", b = "b-model" }\n'
    async with routed_server(two_backend_config(ups, route=route)) as (_, client):
        await client.chat.completions.create(model="m", messages=HELLO)
    assert ups["a"].bodies[0]["model"] == "a-model"
    assert ups["b"].bodies[0]["model"] == "b-model"


async def test_a_cooled_down_upstream_shows_in_ready_and_metrics(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "503"
    top = "[routing]\ncooldown_after = 2\ncooldown_seconds = 60\n"
    async with routed_server(two_backend_config(ups, top=top)) as (_, client):
        root = str(client.base_url).rstrip("/").removesuffix("/v1")
        before = await scrape(root)
        for _ in range(2):
            await client.chat.completions.create(model="m", messages=HELLO)
        after = await scrape(root)
        async with aiohttp.ClientSession() as session, session.get(f"{root}/ready") as response:
            status, ready = response.status, await response.json()
    assert before.value("translator_backend_cooled_down", backend="a") == 0
    assert after.value("translator_backend_cooled_down", backend="a") == 1
    assert after.value("translator_backend_consecutive_failures", backend="a") == 2
    assert after.value("translator_backend_cooled_down", backend="b") == 0
    assert status == 200  # one backend down is routing's concern, not readiness's
    assert ready["routing"]["a"]["state"] == "cooled_down"
    assert ready["routing"]["a"]["failures"] == 2
    assert 0 < ready["routing"]["a"]["cooldown_remaining"] <= 60
    assert ready["routing"]["b"]["state"] == "healthy"


async def test_fallback_on_a_status_names_the_upstreams_own(ups: dict[str, StandIn]) -> None:
    ups["a"].fault = "500"  # shown to a client as a 502
    config = two_backend_config(ups, route='fallback_on = ["500"]\n')
    async with routed_server(config) as (_, client):
        reply = await client.chat.completions.create(model="m", messages=HELLO)
        ups["a"].fault = "503"
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content == "from b"
    assert caught.value.status_code == 503
    assert len(ups["b"].bodies) == 1
