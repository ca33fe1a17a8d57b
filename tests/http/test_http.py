"""The shared HTTP client against aioresponses: retries, Retry-After, error mapping."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aioresponses import aioresponses

from translator._http import BoundClient, HttpClient, HttpPolicy, UpstreamDetail
from translator._http import client as http_module
from translator._http.status import parse_retry_after
from translator.errors import (
    MalformedUpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

URL = "http://upstream.test/v1/thing"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff pauses are recorded instead of slept."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(http_module, "_sleep", sleep)
    return slept


@pytest.fixture
async def client() -> AsyncIterator[BoundClient]:
    shared = HttpClient()
    yield shared.bind("up", HttpPolicy(retries=2))
    await shared.aclose()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


def calls(m: aioresponses) -> int:
    return sum(len(v) for v in m.requests.values())


async def test_a_503_then_success_is_retried_honouring_retry_after(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, status=503, headers={"Retry-After": "0"}, body=b"busy")
    mocked.post(URL, status=200, body=b'{"ok": true}')
    reply = await client.send("POST", URL, body=b"{}")
    assert (reply.status, reply.body) == (200, b'{"ok": true}')
    assert calls(mocked) == 2
    assert pauses == [0.0]


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("idempotent", [False, True])
async def test_429_and_503_are_retried_for_every_request(
    client: BoundClient, mocked: aioresponses, pauses: list[float], status: int, idempotent: bool
) -> None:
    mocked.post(URL, status=status)
    mocked.post(URL, status=200, body=b"fine")
    assert (await client.send("POST", URL, idempotent=idempotent)).status == 200
    assert calls(mocked) == 2


@pytest.mark.parametrize("status", [502, 504])
async def test_502_and_504_are_retried_only_for_an_idempotent_request(
    client: BoundClient, mocked: aioresponses, pauses: list[float], status: int
) -> None:
    mocked.post(URL, status=status)
    assert (await client.send("POST", URL, idempotent=False)).status == status
    assert (calls(mocked), pauses) == (1, [])
    mocked.post(URL, status=status)
    mocked.post(URL, status=200, body=b"fine")
    assert (await client.send("POST", URL, idempotent=True)).status == 200
    assert calls(mocked) == 3


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_by_default_the_method_says_whether_a_request_is_idempotent(
    client: BoundClient, mocked: aioresponses, pauses: list[float], method: str, retried: bool
) -> None:
    mocked.add(URL, method, status=502)
    mocked.add(URL, method, status=200)
    reply = await client.send(method, URL)
    assert reply.status == (200 if retried else 502)
    assert calls(mocked) == (2 if retried else 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
async def test_other_statuses_are_not_retried(
    client: BoundClient, mocked: aioresponses, pauses: list[float], status: int
) -> None:
    mocked.post(URL, status=status, body=b"no")
    mocked.post(URL, status=200)
    reply = await client.send("POST", URL, idempotent=True)
    assert reply.status == status
    assert calls(mocked) == 1
    assert pauses == []


async def test_retries_give_up_and_return_the_last_error(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, status=502, repeat=True)
    reply = await client.send("POST", URL, idempotent=True)
    assert reply.status == 502
    assert calls(mocked) == 3
    assert len(pauses) == 2


async def test_backoff_grows_exponentially_with_jitter(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, status=503, repeat=True)
    await client.send("POST", URL)
    first, second = pauses
    assert 0.125 <= first <= 0.25
    assert 0.25 <= second <= 0.5


async def test_retry_false_sends_once(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, status=503, repeat=True)
    assert (await client.send("POST", URL, retry=False)).status == 503
    assert calls(mocked) == 1


async def test_a_retry_after_longer_than_allowed_is_not_waited_for(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, status=429, headers={"Retry-After": "3600"}, body=b"slow down")
    mocked.post(URL, status=200)
    reply = await client.send("POST", URL)
    assert reply.status == 429
    assert calls(mocked) == 1
    assert pauses == []


async def test_retry_after_as_an_http_date(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    mocked.post(URL, status=503, headers={"Retry-After": when})
    mocked.post(URL, status=200)
    assert (await client.send("POST", URL)).status == 200
    [pause] = pauses
    assert 3.0 <= pause <= 5.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("2", 2.0), ("1.5", 1.5), ("-4", 0.0), ("soon", None), ("nan", None), ("", None)],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_connection_that_could_not_be_opened_is_retried_for_every_request(
    client: BoundClient, mocked: aioresponses, pauses: list[float], idempotent: bool
) -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("upstream.test", 80, False, True, None, None, None),
        ConnectionRefusedError(111, "Connection refused"),
    )
    mocked.post(URL, exception=refused)
    mocked.post(URL, status=200, body=b"ok")
    assert (await client.send("POST", URL, idempotent=idempotent)).body == b"ok"
    assert len(pauses) == 1


@pytest.mark.parametrize(
    "lost",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
    ],
    ids=["disconnected", "reset", "reset-writing"],
)
async def test_a_connection_lost_after_sending_is_retried_only_if_idempotent(
    client: BoundClient, mocked: aioresponses, pauses: list[float], lost: Exception
) -> None:
    mocked.post(URL, exception=lost)
    with pytest.raises(UpstreamUnavailableError) as caught:
        await client.send("POST", URL)
    assert caught.value.status == 502
    assert (calls(mocked), pauses) == (1, [])

    mocked.post(URL, exception=lost)
    mocked.post(URL, status=200, body=b"ok")
    assert (await client.send("POST", URL, idempotent=True)).body == b"ok"
    assert len(pauses) == 1


async def test_a_read_timeout_is_a_504_and_not_retried(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, exception=aiohttp.SocketTimeoutError("read"))
    mocked.post(URL, status=200)
    with pytest.raises(UpstreamTimeoutError) as caught:
        await client.send("POST", URL)
    assert caught.value.status == 504
    assert caught.value.to_openai()["error"]["code"] == "upstream_timeout"
    assert calls(mocked) == 1


async def test_a_connect_timeout_is_retried_then_a_504(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, exception=aiohttp.ConnectionTimeoutError("connect"), repeat=True)
    with pytest.raises(UpstreamTimeoutError):
        await client.send("POST", URL)
    assert calls(mocked) == 3


async def test_a_broken_reply_is_a_502_malformed(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    mocked.post(URL, exception=aiohttp.ClientPayloadError("truncated"))
    with pytest.raises(MalformedUpstreamError) as caught:
        await client.send("POST", URL)
    assert caught.value.status == 502


async def test_an_invalid_url_is_a_502_not_a_crash(client: BoundClient) -> None:
    with pytest.raises(UpstreamUnavailableError) as caught:
        await client.send("POST", "not a url")
    assert caught.value.status == 502


# -- check: upstream errors as OpenAI errors -----------------------------------


def reply(status: int, body: bytes) -> http_module.Reply:
    return http_module.Reply(status, {}, body)


def test_check_passes_an_ok_reply(client: BoundClient) -> None:
    ok = reply(200, b"{}")
    assert client.check(ok) is ok


@pytest.mark.parametrize(
    ("upstream", "shown", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (404, 404, "not_found_error"),
        (429, 429, "rate_limit_error"),
        (500, 502, "upstream_error"),
        (502, 502, "upstream_error"),
        (503, 503, "upstream_error"),
        (504, 504, "upstream_error"),
    ],
)
def test_check_maps_statuses(
    client: BoundClient, upstream: int, shown: int, error_type: str
) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(upstream, b"went wrong"))
    error = caught.value
    assert (error.status, error.error_type) == (shown, error_type)
    assert error.message == f"The up backend answered {upstream}: went wrong"
    assert error.code == f"upstream_{upstream}"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_the_translators_problem_a_502(
    client: BoundClient, status: int
) -> None:
    said = UpstreamDetail(
        "Incorrect API key provided: sk-up****cret.",
        type="invalid_request_error",
        code="invalid_api_key",
    )
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(status, b'{"error": "sk-upstream-secret"}'), lambda body: said)
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_authentication_failed")
    assert error["message"].startswith("The up backend refused the translator's credentials")
    assert f"(HTTP {status})" in error["message"]
    assert "sk-up" not in error["message"]
    assert error["param"] is None


def test_refused_credentials_without_a_parser_do_not_echo_the_body(client: BoundClient) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(401, b"bad key sk-upstream-secret"))
    assert caught.value.status == 502
    assert "sk-upstream-secret" not in caught.value.message


SENT_KEY = "up-key-0123456789"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Authorization", f"Bearer {SENT_KEY}"),
        ("authorization", f"Bearer {SENT_KEY}"),
        ("api-key", SENT_KEY),
        ("X-Api-Key", SENT_KEY),
    ],
)
async def test_a_refusal_quoting_the_key_sent_never_logs_it(
    client: BoundClient,
    mocked: aioresponses,
    caplog: pytest.LogCaptureFixture,
    header: str,
    value: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    said = f"key {SENT_KEY} (sent as {value!r}) is revoked"
    mocked.post(URL, status=401, body=said.encode())
    sent = await client.send("POST", URL, body=b"{}", headers={header: value})
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(sent)
    assert caught.value.status == 502
    assert SENT_KEY not in caplog.text
    assert "key [redacted] (sent as '[redacted]') is revoked" in caplog.text


async def test_a_key_sent_as_a_query_parameter_never_reaches_the_logs(
    client: BoundClient,
    mocked: aioresponses,
    caplog: pytest.LogCaptureFixture,
    pauses: list[float],
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{URL}?key={SENT_KEY}", status=503)
    mocked.get(f"{URL}?key={SENT_KEY}", status=403, body=f"{SENT_KEY} may not".encode())
    sent = await client.send("GET", URL, params={"key": SENT_KEY})
    with pytest.raises(UpstreamStatusError):
        client.check(sent)
    assert "[redacted] may not" in caplog.text
    assert SENT_KEY not in caplog.text


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_logs_no_token_looking_words(
    client: BoundClient, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    said = b"got 'Bearer abc.def-123', basic dXNlcjpwYXNz, sk-proj-Zx81_aa9, ?api_key=q1w2e3"
    with pytest.raises(UpstreamStatusError):
        client.check(reply(status, said))
    for secret in ("abc.def-123", "dXNlcjpwYXNz", "sk-proj-Zx81_aa9", "q1w2e3"):
        assert secret not in caplog.text
    assert (
        "got 'Bearer [redacted]', basic [redacted], [redacted], ?api_key=[redacted]" in caplog.text
    )


async def test_an_error_passed_to_the_client_never_carries_the_key_sent(
    client: BoundClient, mocked: aioresponses
) -> None:
    mocked.post(URL, status=400, body=f"Bearer {SENT_KEY} may not use this model".encode())
    mocked.post(URL, status=400, body=b"{}")
    headers = {"Authorization": f"Bearer {SENT_KEY}"}
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(await client.send("POST", URL, body=b"{}", headers=headers))
    assert caught.value.message == "The up backend answered 400: [redacted] may not use this model"

    def detail(body: bytes) -> UpstreamDetail:
        return UpstreamDetail(f"{SENT_KEY} is wrong; a Bearer token is expected", param="p")

    with pytest.raises(UpstreamStatusError) as caught:
        client.check(await client.send("POST", URL, body=b"{}", headers=headers), detail)
    # Only what was sent is blanked: a word that merely looks like a token stays.
    assert caught.value.message == "[redacted] is wrong; a Bearer token is expected"
    assert caught.value.param == "p"


def test_check_with_a_message_parser(client: BoundClient) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(422, b'{"detail": "bad"}'), lambda body: body.decode()[12:15])
    assert caught.value.message == "The up backend answered 422: bad"


def test_check_passes_an_upstream_detail_through(client: BoundClient) -> None:
    def parse(body: bytes) -> UpstreamDetail:
        return UpstreamDetail(
            "Invalid 'temperature'", type="invalid_request_error", param="temperature", code="bad"
        )

    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(400, b"..."), parse)
    assert caught.value.to_openai() == {
        "error": {
            "message": "Invalid 'temperature'",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "bad",
        }
    }
    assert caught.value.status == 400


def test_check_survives_a_parser_that_fails(client: BoundClient) -> None:
    def parse(body: bytes) -> str:
        raise ValueError("not json")

    with pytest.raises(UpstreamStatusError) as caught:
        client.check(reply(400, b"<html>oops</html>"), parse)
    assert caught.value.message.endswith("<html>oops</html>")


def test_check_of_an_empty_body(client: BoundClient) -> None:
    with pytest.raises(UpstreamStatusError, match="answered 503: HTTP 503"):
        client.check(reply(503, b""))


async def test_one_pooled_session_shared_by_bound_clients() -> None:
    shared = HttpClient()
    a, b = shared.bind("a"), shared.bind("b")
    assert a.client.session is b.client.session
    session = shared.session
    await shared.aclose()
    assert session.closed
    await shared.aclose()


def test_policy_timeouts() -> None:
    timeout = HttpPolicy(connect_timeout=1, read_timeout=2, total_timeout=3).timeout()
    assert (timeout.sock_connect, timeout.sock_read, timeout.total) == (1, 2, 3)


async def test_a_form_factory_is_built_for_each_attempt(
    client: BoundClient, mocked: aioresponses, pauses: list[float]
) -> None:
    built: list[aiohttp.FormData] = []

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("file", b"bytes", filename="a.txt")
        built.append(data)
        return data

    mocked.post(URL, status=503)
    mocked.post(URL, status=200)
    assert (await client.send("POST", URL, data=form)).status == 200
    assert len(built) == 2


async def test_a_redirect_is_not_followed_and_is_a_502(
    client: BoundClient, mocked: aioresponses
) -> None:
    mocked.post(URL, status=301, headers={"Location": "https://upstream.test/v1/thing"})
    reply = await client.send("POST", URL)
    assert reply.status == 301
    assert not reply.ok
    with pytest.raises(UpstreamStatusError, match=r"redirecting to https://upstream") as caught:
        client.check(reply)
    assert caught.value.status == 502
