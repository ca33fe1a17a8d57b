"""Load balancing: how requests spread over a route's backends.

Round-robin and weighted are measured over 1,000 requests through the
dispatcher and the translator's whole pipeline (scripted backends); least-busy
through the real server, with one slow stand-in upstream and one fast.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.routing_upstreams import backend_table, routed_server, stand_ins
from translator._core import Translator
from translator._openai import decode_request
from translator._routing import Dispatcher, Route, RouteTable, Strategy
from translator.testing import MockBackend

HELLO = [{"role": "user", "content": "Hello"}]
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "Hello"}]}'


async def spread(route: Route, names: list[str], requests: int = 1000) -> Counter[str]:
    translator = Translator({n: MockBackend(n) for n in names})
    dispatcher = Dispatcher(translator, RouteTable([route], names))
    answered: Counter[str] = Counter()
    for _ in range(requests):
        routed = await dispatcher.complete(decode_request(BODY), BODY)
        answered[routed.backend] += 1
    return answered


async def test_round_robin_spreads_evenly() -> None:
    route = Route("m", backends=["a", "b", "c"], strategy=Strategy.ROUND_ROBIN)
    answered = await spread(route, ["a", "b", "c"])
    assert sum(answered.values()) == 1000
    assert all(abs(count - 1000 / 3) <= 2 for count in answered.values()), answered


async def test_weighted_spreads_by_weight() -> None:
    route = Route(
        "m", backends=["a", "b", "c"], strategy=Strategy.WEIGHTED, weights={"a": 5, "b": 3, "c": 2}
    )
    answered = await spread(route, ["a", "b", "c"])
    assert abs(answered["a"] - 500) <= 5, answered
    assert abs(answered["b"] - 300) <= 5, answered
    assert abs(answered["c"] - 200) <= 5, answered


async def test_weighted_interleaves_rather_than_bursts() -> None:
    route = Route("m", backends=["a", "b"], strategy=Strategy.WEIGHTED, weights={"a": 3, "b": 1})
    translator = Translator({n: MockBackend(n) for n in "ab"})
    dispatcher = Dispatcher(translator, RouteTable([route], ["a", "b"]))
    order = [dispatcher.plan("m").order()[0] for _ in range(8)]
    assert order.count("b") == 2
    assert "bb" not in "".join(order)


async def test_least_busy_sends_most_requests_to_the_fast_upstream() -> None:
    async with stand_ins("slow", "fast") as ups:
        ups["slow"].fault = "slow"
        ups["slow"].delay = 0.3
        config = (
            backend_table("slow", ups["slow"].base_url)
            + backend_table("fast", ups["fast"].base_url)
            + '[[routes]]\nmodel = "m"\nbackends = ["slow", "fast"]\nstrategy = "least-busy"\n'
        )
        async with routed_server(config) as (_, client):
            answered: Counter[str] = Counter()

            async def worker() -> None:
                for _ in range(10):
                    raw = await client.chat.completions.with_raw_response.create(
                        model="m", messages=HELLO
                    )
                    answered[raw.headers["x-translator-backend"]] += 1

            await asyncio.gather(*(worker() for _ in range(4)))
        slow_most = ups["slow"].most_in_flight
    assert sum(answered.values()) == 40
    # Round-robin would give the slow one 20, four at a time at worst;
    # least-busy gives it a request only when it has no more in flight than
    # the fast one, which is rarely busy.
    assert answered["slow"] <= 15, answered
    assert answered["fast"] >= 25, answered
    assert slow_most <= 2
