"""Generated requests against the real server on loopback (hypothesis, bounded).

Each example sends one request (generated method and route, headers, header
names and values, JSON field names and values, or raw body bytes) over a raw
socket, with a health check pipelined behind it, and asserts: an answer with
a 2xx or 4xx status, never a 5xx; an OpenAI-shaped body; no traceback and no
error in the server's log; and the connection either answers the health
check next or is closed cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.raw_http import Answer, read_answer
from translator.config import parse_config
from translator.server import create_app, serving

HEALTH = b"GET /health HTTP/1.1\r\nHost: fuzz\r\n\r\n"
# Headers that change the framing of the exchange itself, not what is asked.
FRAMING = {"content-length", "transfer-encoding", "expect", "upgrade", "host", "connection"}
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Server:
    """The app served from a thread, and every log record at WARNING or above."""

    def __init__(self) -> None:
        self.port = 0
        self.records: list[logging.LogRecord] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = parse_config("[server]\nheader_timeout = 2.0\nbody_timeout = 2.0\n")
        async with serving(create_app(config), shutdown_timeout=1.0) as url:
            self.port = int(url.rsplit(":", 1)[1])
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Collect(logging.Handler):
    def __init__(self, server: Server) -> None:
        super().__init__(logging.WARNING)
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        self.server.emit(record)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server() as running:
        handler = _Collect(running)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield running
        finally:
            root.removeHandler(handler)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
valid_messages = st.builds(lambda text: [{"role": "user", "content": text}], st.text(max_size=10))
messages = valid_messages | st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"])},
        optional={"content": json_values},
    ),
    max_size=3,
)
# Names and strings that favour what has broken servers: control bytes, quotes, non-ASCII.
tricky_text = st.text(st.sampled_from('ab\n\r\t\x00\x01\x1b\x7f"\\ %é\u2028'), max_size=8)
field_names = tricky_text | st.text(max_size=12)
chat_bodies = st.builds(
    lambda model, msgs, extra, stream: json.dumps(
        {"model": model, "messages": msgs, **extra, **({"stream": stream} if stream else {})}
    ).encode(),
    field_names | st.just("echo"),
    messages,
    st.dictionaries(field_names, json_values, max_size=3),
    st.booleans(),
)
bodies = chat_bodies | st.binary(max_size=200) | st.just(b"")
header_names = st.text(TOKEN, min_size=1, max_size=20) | st.sampled_from(
    ["Content-Type", "Content-Encoding", "Authorization", "X-Request-Id", "x-translator-compat"]
)
header_values = st.text(
    st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=40
) | st.sampled_from(["application/json", "gzip", "x-chaos", "lenient", "Bearer x"])
routes = st.sampled_from(
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/openai/chat/completions"),
        ("POST", "/v1/files"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/echo"),
        ("GET", "/v1/files"),
        ("DELETE", "/v1/files/file-0"),
        ("PUT", "/v1/chat/completions"),
        ("GET", "/nowhere"),
    ]
)


def build(route: tuple[str, str], headers: list[tuple[str, str]], body: bytes) -> bytes:
    method, path = route
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in FRAMING]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, request: bytes) -> tuple[Answer | None, Answer | None]:
    """The answer to ``request`` and to the health check pipelined behind it."""

    async def run() -> tuple[Answer | None, Answer | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        try:
            writer.write(request + HEALTH)
            await writer.drain()
            async with asyncio.timeout(10):
                first = await read_answer(reader)
                second = await read_answer(reader) if first is not None else None
            return first, second
        finally:
            writer.close()

    return asyncio.run(run())


def assert_openai_shaped(answer: Answer) -> None:
    if answer.status >= 400:
        answer.error()
        return
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line for line in answer.body.split(b"\n") if line.startswith(b"data: ")]
        assert events, answer.body[:200]
        assert events[-1] == b"data: [DONE]" or b'"error"' in events[-1]
        return
    body: Any = answer.json()
    assert isinstance(body, dict)


@settings(
    max_examples=60,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=routes,
    headers=st.lists(st.tuples(header_names, header_values), max_size=4),
    body=bodies,
)
def test_generated_requests_get_an_openai_answer_and_leave_the_connection_usable(
    server: Server, route: tuple[str, str], headers: list[tuple[str, str]], body: bytes
) -> None:
    seen = len(server.records)
    try:
        first, second = exchange(server.port, build(route, headers, body))
    except (OSError, ConnectionError):
        first = second = None
    assert first is not None, "no answer at all"
    assert first.status < 500, (first.status, first.body[:300])
    assert first.status >= 200
    assert_openai_shaped(first)
    if second is not None:  # else the server closed the connection cleanly after answering
        assert (second.status, second.json()) == (200, {"status": "ok"})
    new = server.records[seen:]
    assert not [r for r in new if r.exc_info or r.levelno >= logging.ERROR], [
        r.getMessage() for r in new
    ]
