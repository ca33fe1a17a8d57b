"""Client data with control bytes: it never breaks a response's headers, never puts
a connection out of step, and never forges a log line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import pytest
from aiohttp import web

from tests.raw_http import RawClient, post_json
from translator.server import create_app, serving
from translator.server._logs import TextFormatter

CONTROL = [*range(0x20), 0x7F]
HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


def chat(**extra: object) -> bytes:
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}], **extra}
    return json.dumps(body).encode()


@pytest.fixture
async def root() -> AsyncIterator[str]:
    async with serving(create_app()) as url:
        yield url


@pytest.mark.parametrize("stream", [False, True])
async def test_a_control_byte_in_an_ignored_field_name_is_escaped_in_its_header(
    root: str, stream: bool
) -> None:
    client = await RawClient.connect(root)
    for byte in CONTROL:
        name = f"a{chr(byte)}b"
        # The chat request, and a second request pipelined behind it on the same connection.
        await client.send(post_json("/v1/chat/completions", chat(stream=stream, **{name: 1})))
        await client.send(HEALTH)
        answer = await client.answer()
        assert answer is not None, f"no answer for byte {byte:#x}"
        assert answer.status == 200
        ignored = answer.headers["x-translator-ignored"]
        assert ignored == (name if byte == 0x09 else f"a%{byte:02X}b")
        if stream:
            assert answer.body.rstrip().endswith(b"data: [DONE]")
        after = await client.answer()
        assert after is not None
        assert (after.status, after.json()) == (200, {"status": "ok"})
    await client.close()


async def test_a_control_byte_in_a_model_name_or_a_request_id_is_harmless(root: str) -> None:
    client = await RawClient.connect(root)
    for byte in CONTROL:
        model = f"echo{chr(byte)}x"
        await client.send(
            post_json(
                "/v1/chat/completions",
                json.dumps(
                    {"model": model, "messages": [{"role": "user", "content": "x"}]}
                ).encode(),
            )
        )
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200
        assert answer.json()["model"] == model
    for byte in CONTROL:
        if byte in (0x0A, 0x0D):
            continue  # they end the header line: no request id can hold them
        head = f"GET /health HTTP/1.1\r\nHost: t\r\nX-Request-Id: ab{chr(byte)}cd\r\n\r\n"
        await client.send(head.encode("latin-1"))
        answer = await client.answer()
        assert answer is not None
        if answer.status == 400:  # the parser refuses NUL in a value; the connection ends
            assert answer.error()["code"] == "bad_http_request"
            await client.close()
            client = await RawClient.connect(root)
            continue
        assert answer.status == 200
        request_id = answer.headers["x-request-id"]
        assert request_id.startswith("req_")  # not the one sent: a fresh one
    await client.close()


async def test_a_failure_while_a_response_is_prepared_closes_the_connection() -> None:
    app = create_app()

    async def failing_hook(request: web.Request, response: web.StreamResponse) -> None:
        if "x-fail" in request.headers:
            raise RuntimeError("a response hook failed")

    app.on_response_prepare.append(failing_hook)
    async with serving(app) as root:
        for stream in (True, False):
            client = await RawClient.connect(root)
            await client.send(
                post_json("/v1/chat/completions", chat(stream=stream), {"X-Fail": "1"})
            )
            await client.send(HEALTH)  # must never be answered out of step
            assert await client.answer() is None
            await client.close()
        client = await RawClient.connect(root)  # the server itself is fine
        await client.send(HEALTH)
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200
        await client.close()


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """What the server logs with ``--log-format text``, from every logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_control_bytes_in_client_values_never_forge_a_text_log_line(
    text_log: io.StringIO,
) -> None:
    forged = "\nFORGED level=critical\r\x1b[2J\u2028FORGED"
    async with serving(create_app()) as root:
        client = await RawClient.connect(root)
        await client.send(
            post_json(
                "/v1/chat/completions",
                json.dumps(
                    {
                        "model": "m" + forged,
                        "messages": [{"role": "user", "content": "x"}],
                        "zz" + forged: 1,
                    }
                ).encode(),
            )
        )
        assert (await client.answer()) is not None
        await client.send(
            f"GET /v1/models/{quote('x' + forged)} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        )
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 404
        await client.close()
    lines = text_log.getvalue().splitlines()
    assert any("zz" in line for line in lines)  # the matrix's line about the ignored field
    assert any("/v1/models/x" in line for line in lines)  # the access line with the path
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
    for line in lines:
        assert stamp.match(line), f"a forged line: {line!r}"
        assert "\x1b" not in line


@pytest.mark.parametrize(
    ("header", "status"),
    [("Content-Encoding", 415), ("Content-Type", 415), ("x-translator-compat", 400)],
)
async def test_undecodable_bytes_quoted_in_an_error_still_make_an_openai_body(
    root: str, header: str, status: int
) -> None:
    client = await RawClient.connect(root)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
        + (b"" if header == "Content-Type" else b"Content-Type: application/json\r\n")
        + header.encode()
        + b": \x80\xff\r\nContent-Length: %d\r\n\r\n"
    )
    await client.send(head % len(chat()) + chat())
    answer = await client.answer()
    assert answer is not None
    assert answer.status == status
    message = answer.error()["message"]
    assert header == "Content-Type" or "\\udc80" in message  # quoted, escaped
    await client.close()
