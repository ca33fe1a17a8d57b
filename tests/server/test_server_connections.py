"""Each connection's limits, over raw sockets on loopback: header bytes, slow
clients, idle connections, the number of connections."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from tests.raw_http import RawClient, post_json
from translator.config import parse_config
from translator.server import create_app, serving

HELLO = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
async def root() -> AsyncIterator[str]:
    """A server with the default limits."""
    async with serving(create_app()) as url:
        yield url


def quick(**keys: float) -> str:
    """A ``[server]`` table with these keys."""
    return "[server]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


# -- header bytes ----------------------------------------------------------------------


async def test_a_head_that_never_ends_is_refused_once_past_the_total_limit(root: str) -> None:
    client = await RawClient.connect(root)
    await client.send(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n")
    for i in range(12):  # each field well within the 8 KiB a field; 48 KB in all
        await client.send(f"X-Filler-{i}: {'a' * 4000}\r\n".encode())
        await asyncio.sleep(0)
    answer = await client.answer()  # the head is never finished: the server answers anyway
    assert answer is not None
    assert answer.status == 431
    error = answer.error()
    assert error["code"] == "header_too_large"
    assert "32768 bytes" in error["message"]
    assert await client.closed()
    await client.close()


async def test_a_whole_request_with_megabytes_of_headers_is_refused(root: str) -> None:
    client = await RawClient.connect(root)
    fields = "".join(f"X-F{i}: {'b' * 8000}\r\n" for i in range(120))
    request = f"GET /v1/models HTTP/1.1\r\nHost: test\r\n{fields}\r\n".encode()
    client.writer.write(request)  # not drained: the server answers and closes mid-way
    answer = await client.answer()
    assert answer is not None
    assert answer.status == 431
    await client.close()


async def test_one_field_over_8_kib_is_refused_by_default(root: str) -> None:
    client = await RawClient.connect(root)
    await client.send(f"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Big: {'c' * 9000}\r\n\r\n".encode())
    answer = await client.answer()
    assert answer is not None
    assert answer.status == 431
    assert "8192" in answer.error()["message"]
    await client.close()


async def test_heads_within_the_limits_are_served_one_after_another(root: str) -> None:
    client = await RawClient.connect(root)
    fields = "".join(f"X-F{i}: {'d' * 7000}\r\n" for i in range(4))  # 28 KB: within 32 KiB
    for _ in range(3):  # kept alive: the count starts over with each request
        await client.send(f"GET /v1/models HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200
    await client.close()


async def test_a_body_far_larger_than_the_head_limit_is_not_counted_as_head(root: str) -> None:
    body = json.dumps(
        {"model": "echo", "messages": [{"role": "user", "content": "x" * 400_000}]}
    ).encode()
    client = await RawClient.connect(root)
    for _ in range(2):  # the second head follows a body that ended in a large read
        await client.send(post_json("/v1/chat/completions", body))
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200
    await client.close()


# -- the request line ------------------------------------------------------------------


def get(target: str, fields: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode()


def target_of(line_bytes: int) -> str:
    """A ``/v1/models`` target whose request line (``GET <target> HTTP/1.1``) is that long."""
    return "/v1/models?q=" + "x" * (line_bytes - len("GET /v1/models?q= HTTP/1.1"))


def upload(name: str) -> bytes:
    """A whole ``POST /v1/files`` request: handling it leaves a file behind."""
    body = (
        '--xx\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--xx\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\nhello\r\n--xx--\r\n"
    ).encode()
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: t\r\n"
        f"Content-Type: multipart/form-data; boundary=xx\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def uploaded(root: str) -> list[str]:
    """The names of the files the server holds, asked on a connection of its own."""
    client = await RawClient.connect(root)
    await client.send(get("/v1/files"))
    answer = await client.answer()
    await client.close()
    assert answer is not None
    assert answer.status == 200
    return [f["filename"] for f in answer.json()["data"]]


@pytest.mark.parametrize("limits", [{}, {"max_line_size": 1000}, {"max_line_size": 20000}])
@pytest.mark.parametrize("over", [1, 7, 5000])
async def test_a_request_line_over_the_limit_is_a_414(limits: dict[str, int], over: int) -> None:
    limit = limits.get("max_line_size", 8192)
    async with serving(create_app(parse_config(quick(**limits)))) as root:
        client = await RawClient.connect(root)
        await client.send(get(target_of(limit)))
        within = await client.answer()
        assert within is not None
        assert within.status == 200  # exactly at the limit: served, and the connection kept
        await client.send(get(target_of(limit + over)))
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 414
        assert answer.headers["x-request-id"].startswith("req_")
        error = answer.error()
        assert error["code"] == "uri_too_long"
        assert f"{limit} bytes" in error["message"]
        assert "xxxx" not in error["message"]  # the target itself is never echoed
        assert await client.closed()
        await client.close()


async def test_a_request_line_that_never_ends_is_a_414_once_past_the_limit(root: str) -> None:
    client = await RawClient.connect(root)
    await client.send(b"GET /v1/models?q=")
    for _ in range(6):  # 12 KB, and never a line end
        with contextlib.suppress(ConnectionError):
            await client.send(b"y" * 2000)
        await asyncio.sleep(0.01)
    answer = await client.answer()
    assert answer is not None
    assert answer.status == 414
    await client.close()


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (get(target_of(8193)), 414),  # parsed whole, then refused
        (get(target_of(12000)), 414),  # refused by the parser mid-line
        (get("/v1/models", f"X-Big: {'a' * 9000}\r\n"), 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["line-parsed", "line-unparsed", "field", "garbage"],
)
async def test_nothing_pipelined_behind_a_refused_request_is_handled(
    root: str, refused: bytes, status: int
) -> None:
    client = await RawClient.connect(root)
    await client.send(refused + upload("behind.txt") + get("/v1/models"))
    answer = await client.answer()
    assert answer is not None
    assert answer.status == status
    assert await client.closed()  # no second answer: the connection ends after the refusal
    await client.close()
    assert await uploaded(root) == []
    # The same upload on its own is handled: it was not refused for what it is.
    client = await RawClient.connect(root)
    await client.send(upload("alone.txt"))
    answer = await client.answer()
    assert answer is not None
    assert answer.status == 200
    await client.close()
    assert await uploaded(root) == ["alone.txt"]


# -- slow clients ----------------------------------------------------------------------


async def test_a_head_sent_a_line_at_a_time_is_cut_off_at_header_timeout() -> None:
    config = parse_config(quick(header_timeout=0.6, keepalive_timeout=5.0))
    async with serving(create_app(config)) as root:
        client = await RawClient.connect(root)
        started = time.monotonic()
        await client.send(b"GET /v1/models HTTP/1.1\r\n")

        async def trickle() -> None:
            for i in range(50):
                await client.send(f"X-Line-{i}: 1\r\n".encode())
                await asyncio.sleep(0.1)

        sender = asyncio.create_task(trickle())
        answer = await client.answer()
        elapsed = time.monotonic() - started
        sender.cancel()
        assert answer is not None
        assert answer.status == 408
        assert answer.error()["code"] == "request_timeout"
        assert 0.5 < elapsed < 3.0
        await client.close()


@pytest.mark.parametrize("kind", ["stalled", "trickled"])
async def test_a_slow_body_is_cut_off_with_a_408(kind: str) -> None:
    # A stalled body is cut for its pause (any rate would do); a trickled one for its rate.
    rate = 1 if kind == "stalled" else 1000
    config = parse_config(quick(body_timeout=0.6, min_body_rate=rate))
    async with serving(create_app(config)) as root:
        client = await RawClient.connect(root)
        request = post_json("/v1/chat/completions", HELLO)
        started = time.monotonic()
        await client.send(request[: len(request) - len(HELLO) + 5])

        async def trickle() -> None:
            for byte in HELLO[5:-1]:  # a byte each 0.1 s: never done, never quite paused
                await client.send(bytes([byte]))
                await asyncio.sleep(0.1)

        sender = asyncio.create_task(trickle()) if kind == "trickled" else None
        answer = await client.answer()
        elapsed = time.monotonic() - started
        if sender is not None:
            sender.cancel()
        assert answer is not None
        assert answer.status == 408
        error = answer.error()
        assert error["code"] == "request_timeout"
        assert ("paused" if kind == "stalled" else "bytes a second") in error["message"]
        assert 0.5 < elapsed < 3.0
        assert await client.closed()
        await client.close()


async def test_a_body_with_short_pauses_at_a_fair_rate_is_served() -> None:
    config = parse_config(quick(body_timeout=0.6, min_body_rate=10))
    async with serving(create_app(config)) as root:
        client = await RawClient.connect(root)
        request = post_json("/v1/chat/completions", HELLO)
        for i in range(0, len(request), 40):
            await client.send(request[i : i + 40])
            await asyncio.sleep(0.2)
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200
        await client.close()


@pytest.mark.parametrize("after_a_request", [False, True])
async def test_an_idle_connection_is_closed_after_keepalive_timeout(after_a_request: bool) -> None:
    config = parse_config(quick(keepalive_timeout=0.5))
    async with serving(create_app(config)) as root:
        client = await RawClient.connect(root)
        if after_a_request:
            await client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = await client.answer()
            assert answer is not None
            assert answer.status == 200
        started = time.monotonic()
        assert await client.closed(within=5.0)
        assert 0.3 < time.monotonic() - started < 3.0
        await client.close()


async def test_connections_over_the_cap_are_refused_with_a_503_and_retry_after() -> None:
    config = parse_config(quick(max_connections=2))
    async with serving(create_app(config)) as root:
        held = [await RawClient.connect(root) for _ in range(2)]
        await asyncio.sleep(0.05)
        extra = await RawClient.connect(root)
        answer = await extra.answer()
        assert answer is not None
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.error()["code"] == "too_many_connections"
        await extra.close()
        await held[0].close()
        await asyncio.sleep(0.05)
        again = await RawClient.connect(root)  # a slot came free
        await again.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await again.answer()
        assert answer is not None
        assert answer.status == 200
        for client in (again, held[1]):
            await client.close()


async def test_a_body_cut_off_is_freed_with_its_connection_not_at_some_later_collection() -> None:
    config = parse_config(quick(body_timeout=0.3, min_body_rate=1))
    size = 4_000_000
    gc.collect()
    gc.disable()  # what is freed must be freed by its last reference going, not by a collection
    tracemalloc.start()
    try:
        async with serving(create_app(config)) as root:
            client = await RawClient.connect(root)
            head = post_json("/v1/chat/completions", b"")
            head = head.replace(b"Content-Length: 0", b"Content-Length: %d" % size)
            await client.send(head + b"x" * (size - 1000))  # then stalls
            answer = await client.answer()
            assert answer is not None
            assert answer.status == 408
            assert await client.closed()
            await client.close()
            await asyncio.sleep(0.1)
            left, read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert read > size / 2  # the body was held while it arrived
    assert left < size / 4, f"{left} bytes still held after the connection closed"
