"""One vocabulary of upstream failures: the metric's ``kind`` label is what ``fallback_on`` names.

Each failure is made the way the library makes it (an upstream's status
through the status mapping, a transport error through the transport
mapping), counted by a request watch into a real metrics registry, and the
label it gets is then given to a route's ``fallback_on`` through the
configuration parser.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from translator._http import Failure, Reply, failure_of
from translator._http.redact import Redactor
from translator._http.status import check, status_error
from translator._http.transport import transport_error
from translator._routing import FALLBACK_NAMES, FallbackPolicy
from translator.config import parse_config
from translator.errors import InvalidRequestError, UpstreamError
from translator.server._metrics import Metrics
from translator.server._observe import Observer, RequestWatch

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = '[backends.a]\nplugin = "echo"\n[backends.b]\nplugin = "echo"\n'


def _status(status: int) -> UpstreamError:
    return status_error(status, b'{"error": {"message": "no"}}', "a", Redactor())


def _redirect() -> UpstreamError:
    try:
        check(Reply(302, {"Location": "https://elsewhere/"}, b""), "a", Redactor())
    except UpstreamError as exc:
        return exc
    raise AssertionError("a redirect is an error")


def _transport(exc: Exception) -> UpstreamError:
    return transport_error(exc, True, "a")[0]


# Every way the library reports an upstream failure, and the kind it is.
SAMPLES: list[tuple[str, UpstreamError, Failure]] = [
    ("read timeout", _transport(aiohttp.ServerTimeoutError()), Failure.TIMEOUT),
    ("connection lost", _transport(aiohttp.ServerDisconnectedError()), Failure.UNAVAILABLE),
    ("not HTTP", _transport(aiohttp.ClientPayloadError()), Failure.MALFORMED),
    ("401", _status(401), Failure.AUTH),
    ("403", _status(403), Failure.AUTH),
    ("429", _status(429), Failure.RATE_LIMITED),
    ("500, shown as 502", _status(500), Failure.SERVER_ERROR),
    ("503", _status(503), Failure.SERVER_ERROR),
    ("redirect", _redirect(), Failure.SERVER_ERROR),
    ("400", _status(400), Failure.REFUSED),
    ("404", _status(404), Failure.REFUSED),
    (
        "reply too large",
        UpstreamError("too large", backend="a", code="upstream_reply_too_large"),
        Failure.OTHER,
    ),
]


@pytest.mark.parametrize(("error", "kind"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES])
def test_each_failure_has_its_kind(error: UpstreamError, kind: Failure) -> None:
    assert failure_of(error) is kind
    assert kind.blames_backend is (kind is not Failure.REFUSED)


def test_what_is_not_an_upstreams_failure_has_no_kind() -> None:
    assert failure_of(InvalidRequestError("the client's")) is None
    assert failure_of(ValueError("a bug")) is None
    assert failure_of(TimeoutError()) is Failure.TIMEOUT  # an attempt_timeout, say


def _reported() -> dict[str, list[UpstreamError]]:
    """The ``kind`` label each sample is counted under, read back from the registry."""
    metrics = Metrics()
    by_kind: dict[str, list[UpstreamError]] = {}
    for _, error, _ in SAMPLES:
        watch = RequestWatch(Observer(metrics=metrics, tracing=None, access_log=False))
        before = _counts(metrics)
        watch.backend_failed("a", error)
        after = _counts(metrics)
        (label,) = [k for k in after if after[k] != before.get(k, 0)]
        by_kind.setdefault(label, []).append(error)
    return by_kind


def _counts(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["kind"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "translator_upstream_errors"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def _policy(name: str) -> FallbackPolicy:
    """The policy of a route whose ``fallback_on`` is ``[name]``, as the config reads it."""
    config = parse_config(
        BACKENDS + f'[[routes]]\nmodel = "m"\nbackends = ["a", "b"]\nfallback_on = ["{name}"]\n'
    )
    return FallbackPolicy(config.routes[0].fallback_on)


def test_every_kind_the_metric_reports_is_one_fallback_on_accepts() -> None:
    reported = _reported()
    assert set(reported) == {k.value for k in Failure}  # the samples reach every kind
    others = [e for _, e, _ in SAMPLES]
    for kind, errors in reported.items():
        policy = _policy(kind)
        assert all(policy.allows(e) for e in errors), kind
        # A kind's own name moves on after that kind alone (5xx also after auth, other).
        moved = {failure_of(e) for e in others if policy.allows(e)}
        assert moved == FALLBACK_NAMES[kind], kind


def test_every_name_fallback_on_accepts_is_kinds_the_metric_reports() -> None:
    reported = _reported()
    for name in FALLBACK_NAMES:
        policy = _policy(name)
        moved = {failure_of(e).value for _, e, _ in SAMPLES if policy.allows(e)}
        assert moved, f"{name} moves on after nothing"
        assert moved <= set(reported), name
    assert {failure_of(e) for _, e, _ in SAMPLES if _policy("connect").allows(e)} == {
        Failure.UNAVAILABLE
    }


@pytest.mark.parametrize(("status", "kind"), [("429", "rate_limited"), ("401", "auth")])
def test_a_status_names_the_upstreams_own_whatever_its_kind(status: str, kind: str) -> None:
    policy = _policy(status)
    assert {failure_of(e).value for _, e, _ in SAMPLES if policy.allows(e)} == {kind}
    assert [n for n, e, _ in SAMPLES if policy.allows(e)] == [status]


def test_the_readme_names_the_same_kinds_in_both_places() -> None:
    readme = (ROOT / "README.rst").read_text()
    row = readme[readme.index("``translator_upstream_errors_total``") :]
    row = row[: row.index("\n``translator_upstream_retries_total``")]
    listed = {word.strip("`,") for word in row.split() if word.startswith("``")}
    assert listed - {"translator_upstream_errors_total"} == {k.value for k in Failure}
    fallback = readme[readme.index("The next backend is tried after a failure") :]
    fallback = fallback[: fallback.index("Nothing is retried once")]
    assert all(f"``{name}``" in fallback for name in FALLBACK_NAMES)
