"""The shared HTTP client against real servers on 127.0.0.1: faults on the wire."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from translator._http import BoundClient, HttpClient, HttpPolicy
from translator._http import client as http_module
from translator.config import parse_config
from translator.errors import (
    MalformedUpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from translator.server import create_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(http_module, "_sleep", sleep)
    return slept


@pytest.fixture
async def shared() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


def bound(shared: HttpClient, **policy: float) -> BoundClient:
    return shared.bind("up", HttpPolicy(**policy))  # type: ignore[arg-type]


async def serve(handler: Handler) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


class RawServer:
    """A TCP server on loopback that answers with whatever bytes a test scripts.

    ``disconnected`` is set when a client closes its connection; ``connections``
    counts the connections accepted.
    """

    def __init__(
        self, script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ):
        self.script = script
        self.connections = 0
        self.requests = 0
        self.received = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/x"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        self.requests += 1
        self.received.set()
        return head

    async def wait_for_eof(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(1024):
            pass
        self.disconnected.set()


def refused_url() -> str:
    """A loopback address nothing listens on: bind a port, then close it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1/x"


# -- whole replies -------------------------------------------------------------


async def test_a_refused_connection_is_a_502_after_retries(
    shared: HttpClient, no_pauses: list[float]
) -> None:
    client = bound(shared, retries=2)
    with pytest.raises(UpstreamUnavailableError) as caught:
        await client.send("POST", refused_url(), body=b"{}")
    assert caught.value.status == 502
    assert caught.value.to_openai()["error"]["code"] == "upstream_unavailable"
    assert "could not be reached" in caught.value.message
    assert len(no_pauses) == 2


async def test_a_503_then_success_on_the_wire(shared: HttpClient, no_pauses: list[float]) -> None:
    seen: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.read())
        if len(seen) == 1:
            return web.Response(status=503, headers={"Retry-After": "0"}, text="busy")
        return web.json_response({"ok": True})

    server = await serve(handler)
    try:
        reply = await bound(shared).send("POST", str(server.make_url("/v1/x")), body=b'{"a":1}')
    finally:
        await server.close()
    assert reply.status == 200
    assert seen == [b'{"a":1}', b'{"a":1}']
    assert no_pauses == [0.0]


async def test_a_400_is_not_retried_on_the_wire(shared: HttpClient, no_pauses: list[float]) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.json_response({"error": {"message": "bad"}}, status=400)

    server = await serve(handler)
    try:
        reply = await bound(shared).send("POST", str(server.make_url("/v1/x")))
    finally:
        await server.close()
    assert (reply.status, hits) == (400, 1)


@pytest.mark.parametrize(("idempotent", "attempts"), [(False, 1), (True, 3)])
async def test_an_upstream_that_hangs_up_after_reading_is_retried_only_if_idempotent(
    shared: HttpClient, no_pauses: list[float], idempotent: bool, attempts: int
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)  # the request arrived; the answer never comes

    async with RawServer(script) as raw:
        with pytest.raises(UpstreamUnavailableError):
            await bound(shared, retries=2).send("POST", raw.url, body=b"{}", idempotent=idempotent)
        assert raw.requests == attempts


async def test_a_gateway_502_on_the_wire_is_retried_only_if_idempotent(
    shared: HttpClient, no_pauses: list[float]
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        if len(seen) <= 2:
            return web.Response(status=502, text="bad gateway")
        return web.json_response({"ok": True})

    server = await serve(handler)
    url = str(server.make_url("/v1/x"))
    try:
        created = await bound(shared).send("POST", url, body=b"{}")
        polled = await bound(shared).send("GET", url)
    finally:
        await server.close()
    assert (created.status, polled.status) == (502, 200)
    assert seen == ["POST", "GET", "GET"]


async def test_a_slow_upstream_is_a_504_and_is_not_retried(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        await raw.wait_for_eof(reader)  # never answers

    async with RawServer(script) as raw:
        with pytest.raises(UpstreamTimeoutError) as caught:
            await bound(shared, read_timeout=0.2, retries=2).send("POST", raw.url, body=b"{}")
        assert caught.value.status == 504
        assert raw.requests == 1


async def test_a_reply_that_is_not_http_is_a_502_malformed(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b"SMTP ready, not HTTP at all\r\n\r\n")
        await writer.drain()

    async with RawServer(script) as raw:
        with pytest.raises(MalformedUpstreamError) as caught:
            await bound(shared).send("POST", raw.url, body=b"{}")
    assert caught.value.status == 502


async def test_a_body_cut_short_is_a_502_malformed(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()

    async with RawServer(script) as raw:
        with pytest.raises(MalformedUpstreamError):
            await bound(shared, retries=0).send("POST", raw.url, body=b"{}")


async def test_cancelling_a_request_closes_its_connection(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        await raw.wait_for_eof(reader)

    async with RawServer(script) as raw:
        task = asyncio.create_task(bound(shared).send("POST", raw.url, body=b"{}"))
        await asyncio.wait_for(raw.received.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(raw.disconnected.wait(), 5)
    assert not shared.session.connector._acquired  # type: ignore[union-attr]


async def test_whole_replies_reuse_one_pooled_connection(shared: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"peer": request.transport.get_extra_info("peername")[1]})  # type: ignore[union-attr]

    server = await serve(handler)
    try:
        client = bound(shared)
        url = str(server.make_url("/v1/x"))
        first = await client.send("GET", url)
        second = await client.send("GET", url)
    finally:
        await server.close()
    assert first.body == second.body


# -- streams -------------------------------------------------------------------


async def test_a_stream_reads_what_the_server_sends(shared: HttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for piece in (b"one ", b"two ", b"three"):
            await response.write(piece)
        await response.write_eof()
        return response

    server = await serve(handler)
    try:
        async with bound(shared).stream("POST", str(server.make_url("/v1/x"))) as response:
            body = await response.read()
        assert body == b"one two three"
        assert not shared.session.connector._acquired  # type: ignore[union-attr]
    finally:
        await server.close()


async def test_a_stream_503_then_success(shared: HttpClient, no_pauses: list[float]) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(body=b"data: ok\n\n")

    server = await serve(handler)
    try:
        async with bound(shared).stream("POST", str(server.make_url("/v1/x"))) as response:
            assert await response.read() == b"data: ok\n\n"
    finally:
        await server.close()
    assert hits == 2


async def test_a_stream_504_is_retried_only_if_idempotent(
    shared: HttpClient, no_pauses: list[float]
) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits <= 2:
            return web.Response(status=504, text="gateway timeout")
        return web.Response(body=b"data: ok\n\n")

    server = await serve(handler)
    url = str(server.make_url("/v1/x"))
    try:
        with pytest.raises(UpstreamStatusError) as caught:
            async with bound(shared).stream("POST", url):
                pytest.fail("an error status must not open the stream")
        assert (caught.value.status, hits) == (504, 1)
        async with bound(shared).stream("POST", url, idempotent=True) as response:
            assert await response.read() == b"data: ok\n\n"
        assert hits == 3
    finally:
        await server.close()


async def test_a_stream_400_is_raised_and_not_retried(
    shared: HttpClient, no_pauses: list[float]
) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=400, text="no such model")

    server = await serve(handler)
    try:
        with pytest.raises(UpstreamStatusError) as caught:
            async with bound(shared).stream("POST", str(server.make_url("/v1/x"))):
                pytest.fail("an error status must not open the stream")
    finally:
        await server.close()
    assert (caught.value.status, hits) == (400, 1)
    assert "no such model" in caught.value.message


async def test_a_stream_cut_mid_way_is_malformed_and_not_retried(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.transport.abort()

    async with RawServer(script) as raw:
        got: list[bytes] = []

        async def read_all() -> None:
            async with bound(shared, retries=2).stream("POST", raw.url) as response:
                async for piece in response.content.iter_any():
                    got.append(piece)

        with pytest.raises(MalformedUpstreamError, match="cut off"):
            await read_all()
        assert raw.requests == 1
    assert b"".join(got) == b"hello"


async def test_a_stalled_stream_is_a_504(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await raw.wait_for_eof(reader)

    async with RawServer(script) as raw:
        with pytest.raises(UpstreamTimeoutError):
            async with bound(shared, read_timeout=0.2).stream("POST", raw.url) as response:
                await response.read()
        assert raw.requests == 1


async def test_leaving_a_stream_early_closes_the_upstream(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await raw.wait_for_eof(reader)

    async with RawServer(script) as raw:
        async with bound(shared).stream("POST", raw.url) as response:
            assert await response.content.readexactly(5) == b"hello"
        await asyncio.wait_for(raw.disconnected.wait(), 5)
    assert not shared.session.connector._acquired  # type: ignore[union-attr]


async def test_cancelling_a_stream_closes_the_upstream(shared: HttpClient) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await raw.wait_for_eof(reader)

    started = asyncio.Event()

    async def consume() -> None:
        async with bound(shared).stream("POST", raw.url) as response:
            await response.content.readexactly(5)
            started.set()
            await response.content.read()  # waits for more, forever

    async with RawServer(script) as raw:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(raw.disconnected.wait(), 5)
    assert not shared.session.connector._acquired  # type: ignore[union-attr]


# -- through the translator's own server ---------------------------------------

UPSTREAM_KEY = "sk-upstream-SECRET-0123"
HELLO = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
CONFIG = """
[backends.up]
plugin = "openai-compatible"
base_url = "{base}/v1"
api_key = "{key}"

[[routes]]
model = "m"
backend = "up"
"""


async def quoting_or_cut(request: web.Request) -> web.StreamResponse:
    """401 quoting the key it was sent (as some upstreams do), or a stream cut mid-way."""
    body = await request.json()
    if body.get("stream") is not True:
        said = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"Invalid key: {said}"}}, status=401)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    }
    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    assert request.transport is not None
    request.transport.close()
    return response


@pytest.fixture
async def app_client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    up = web.Application()
    up.router.add_post("/v1/chat/completions", quoting_or_cut)
    async with TestServer(up, host="127.0.0.1") as upstream:
        base = str(upstream.make_url("")).rstrip("/")
        app = create_app(parse_config(CONFIG.format(base=base, key=UPSTREAM_KEY)))
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            yield test_client


async def test_the_upstream_key_never_reaches_the_logs(
    app_client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await app_client.post("/v1/chat/completions", json=HELLO)
    assert response.status == 502
    assert UPSTREAM_KEY not in await response.text()
    assert "refused the configured credentials (HTTP 401): Invalid key: [redacted]" in caplog.text
    assert UPSTREAM_KEY not in caplog.text


async def test_a_cut_off_stream_names_no_internal_exception(
    app_client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="translator.http")
    response = await app_client.post("/v1/chat/completions", json={**HELLO, "stream": True})
    text = await response.text()
    assert "data: [DONE]" not in text
    last = json.loads(text.strip().split("\n\n")[-1].removeprefix("data: "))
    message = last["error"]["message"]
    assert message == "The up backend's stream was cut off before its end."
    assert "TransferEncodingError" in caplog.text  # the detail stays in the debug log
