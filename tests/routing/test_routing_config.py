"""Routes, health and limits as the configuration gives them; health and fallback alone."""

from __future__ import annotations

import pytest

from translator._routing import FallbackPolicy, Health, HealthSettings, Strategy
from translator.config import ConfigError, parse_config
from translator.errors import (
    UpstreamStatusError,
    UpstreamTimeoutError,
)

BACKENDS = '[backends.a]\nplugin = "echo"\n[backends.b]\nplugin = "echo"\n'


def test_a_route_of_several_backends_reads_whole() -> None:
    config = parse_config(
        BACKENDS
        + '[[routes]]\nmodel = "m"\nbackends = ["a", "b"]\nstrategy = "weighted"\n'
        + 'weights = { a = 2 }\nmodels = { b = "bm" }\nfallback_on = ["503", "connect"]\n'
        + "[routing]\ncooldown_after = 5\ncooldown_seconds = 1.5\n"
        + "[rate_limits]\nrequests_per_minute = 10\n"
    )
    route = config.routes[0]
    assert route.candidates == ["a", "b"]
    assert route.strategy is Strategy.WEIGHTED
    assert (route.weights, route.models) == ({"a": 2}, {"b": "bm"})
    assert (config.routing.cooldown_after, config.routing.cooldown_seconds) == (5, 1.5)
    assert config.rate_limits.requests_per_minute == 10


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ('backend = "a"\nbackends = ["b"]', "routes[0].backends: give backend or backends"),
        ('backends = ["a", "c"]', "routes[0].backends: no backend named 'c'"),
        ('backends = ["a", "a"]', "routes[0].backends: a backend is named twice"),
        (
            'backends = ["a", "b"]\nstrategy = "weighted"\nweights = { c = 1 }',
            "routes[0].weights: c is not one of the route's backends",
        ),
        (
            'backends = ["a", "b"]\nweights = { a = 1 }',
            "routes[0].weights: only strategy = 'weighted' reads them",
        ),
        ('backends = ["a", "b"]\nmodels = { z = "x" }', "routes[0].models: z is not one of"),
        ('backends = ["a", "b"]\nfallback_on = ["302"]', "routes[0].fallback_on: '302' is neither"),
        (
            'backends = ["a", "b"]\nfallback_on = ["busy"]',
            "routes[0].fallback_on: 'busy' is neither",
        ),
        ('backends = ["a", "b"]\nstrategy = "random"', "routes[0].strategy"),
        ('backends = ["a", "b"]\nattempt_timeout = 0', "routes[0].attempt_timeout"),
    ],
)
def test_a_bad_route_is_refused_naming_the_key(route: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BACKENDS + f'[[routes]]\nmodel = "m"\n{route}\n', source="c.toml")
    assert message in str(caught.value)


def test_a_status_in_fallback_on_is_the_upstreams_own() -> None:
    policy = FallbackPolicy(["500"])
    assert policy.allows(UpstreamStatusError("x", status=502, upstream_status=500))
    assert not policy.allows(UpstreamStatusError("x", status=503))
    assert not policy.allows(UpstreamTimeoutError("x"))


def test_cool_down_half_open_and_one_probe_at_a_time() -> None:
    now = [0.0]
    health = Health(
        ["a"], HealthSettings(cooldown_after=2, cooldown_seconds=10), clock=lambda: now[0]
    )
    seen: list[tuple[str, int, bool]] = []
    health.listener = lambda *change: seen.append(change)
    for _ in range(2):
        health.start("a")
        health.record("a", ok=False)
        health.finish("a")
    assert not health.available("a")
    assert health.snapshot()["a"].state == "cooled_down"
    now[0] = 10.0
    assert health.available("a")
    assert health.snapshot()["a"].state == "half_open"
    health.start("a")  # the probe
    assert not health.available("a")  # one probe at a time
    assert health.snapshot()["a"].state == "probing"
    health.record("a", ok=True)
    health.finish("a")
    assert health.available("a")
    assert health.snapshot()["a"].state == "healthy"
    assert seen == [("a", 1, False), ("a", 2, True), ("a", 0, False)]
    health.start("a")
    health.record("a", ok=True)  # nothing changes: the listener is not called
    health.finish("a")
    assert len(seen) == 3


def test_a_probe_that_tells_nothing_lets_the_next_request_probe() -> None:
    now = [0.0]
    health = Health(
        ["a"], HealthSettings(cooldown_after=1, cooldown_seconds=5), clock=lambda: now[0]
    )
    health.start("a")
    health.record("a", ok=False)
    health.finish("a")
    now[0] = 5.0
    health.start("a")
    health.record("a", ok=None)  # the client's own error, or the request given up
    health.finish("a")
    assert health.available("a")
    assert health.snapshot()["a"].state == "half_open"
