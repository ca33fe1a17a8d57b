"""The openai-compatible backend against a loopback upstream speaking real HTTP and SSE."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from translator_plugins import openai_compat

from translator._backend import BackendSettings
from translator._compat import Mode, Treatment
from translator._core import Translator
from translator._http import client as http_module
from translator._model import ChatChunk, Usage
from translator._openai.sse import SSEDecoder
from translator._plugins import get_plugin_manager
from translator.errors import (
    MalformedUpstreamError,
    UnsupportedFieldError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMPLETION = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "upstream-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there", "reasoning_content": None},
            "finish_reason": "stop",
            "logprobs": None,
            "stop_reason": None,
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    "prompt_logprobs": None,
    "kv_transfer_params": None,
}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = [
    b": keepalive\n\n",
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({}, "stop"),
    b"data: "
    + json.dumps(
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "upstream-model",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()
    + b"\n\n",
    b"data: [DONE]\n\n",
]


class Upstream:
    """A loopback OpenAI-compatible server; tests script its replies in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.replies: deque[Reply] = deque()
        self.disconnected = asyncio.Event()
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.path == "/v1/chat/completions"
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        reply = self.replies.popleft() if self.replies else json_reply(COMPLETION)
        return await reply(request)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    def then(self, *replies: Reply) -> Upstream:
        self.replies.extend(replies)
        return self

    def sse(self, pieces: list[bytes], *, abort: bool = False) -> Reply:
        async def reply(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for piece in pieces:
                await response.write(piece)
            if abort:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write_eof()
            return response

        return reply

    def endless(self) -> Reply:
        """Streams one chunk, then keepalives until the client goes away."""

        async def reply(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(chunk({"role": "assistant", "content": "first"}))
            try:
                while True:
                    await asyncio.sleep(0.02)
                    await response.write(b": keepalive\n\n")
            finally:  # a write to a closed connection, or the handler cancelled
                self.disconnected.set()

        return reply


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return reply


def raw_reply(body: bytes, status: int = 200) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type="application/json")

    return reply


def slow_reply(seconds: float) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response(COMPLETION)

    return reply


@asynccontextmanager
async def running_upstream() -> AsyncIterator[Upstream]:
    """An :class:`Upstream` listening on 127.0.0.1 for the duration of the block."""
    up = Upstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", up.handle)
    up.server = TestServer(app, host="127.0.0.1")
    await up.server.start_server()
    try:
        yield up
    finally:
        await up.server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(http_module, "_sleep", sleep)
    return slept


def make(base_url: str, **settings: Any) -> Translator:
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[openai_compat])
    settings.setdefault("api_key", "sk-test")
    config = BackendSettings(plugin="openai-compatible", base_url=base_url, **settings)
    return Translator.from_settings({"up": config}, plugin_manager=pm)


@pytest.fixture
async def translator(upstream: Upstream) -> AsyncIterator[Translator]:
    t = make(upstream.base_url, options={"headers": {"X-Tenant": "t1"}})
    yield t
    await t.aclose()


def request(**fields: Any) -> bytes:
    body = {"model": "my-model", "messages": [{"role": "user", "content": "Hello"}], **fields}
    return json.dumps(body).encode()


# -- complete ------------------------------------------------------------------


async def test_complete_end_to_end(upstream: Upstream, translator: Translator) -> None:
    done = await translator.complete(request(temperature=0.2), "up")
    response = done.response
    assert response.id == "chatcmpl-up"
    assert response.choices[0].message.content == "Hi there"
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (5, 7)
    [body] = upstream.bodies
    assert body == {
        "model": "my-model",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.2,
    }
    headers = upstream.headers[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Tenant"] == "t1"
    assert done.report.actions == []


async def test_translate_request_is_exactly_what_is_sent(
    upstream: Upstream, translator: Translator
) -> None:
    body = request(tools=[{"type": "function", "function": {"name": "f"}}], top_k=4, seed=3)
    native = translator.translate_request(body, "up")
    await translator.complete(body, "up")
    assert json.loads(native) == upstream.bodies[0]
    assert upstream.bodies[0]["top_k"] == 4


def test_translate_response_reads_an_upstream_reply(translator: Translator) -> None:
    out = json.loads(
        translator.translate_response(json.dumps(COMPLETION).encode(), "up", model="m")
    )
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hi there",
        "refusal": None,
    }
    assert "kv_transfer_params" not in out


async def test_vlm_extensions_are_kept_here_not_sent_by_default(
    upstream: Upstream, translator: Translator
) -> None:
    vlmrun = {"domain": "document.invoice", "metadata": {"environment": "dev"}}
    done = await translator.complete(request(session_id="s-1", vlmrun=vlmrun), "up")
    assert "session_id" not in upstream.bodies[0]
    assert "vlmrun" not in upstream.bodies[0]
    # The translator keeps the session: not dropped, emulated; only the domain is dropped.
    assert done.report.dropped == ["vlmrun.domain"]
    assert done.report.emulated == ["session_id", "vlmrun.metadata"]
    assert not translator.backend("up").keeps_sessions
    assert done.response.session_id == "s-1"


async def test_a_session_the_translator_keeps_is_not_reported_as_ignored(
    upstream: Upstream, translator: Translator
) -> None:
    first = await translator.complete(request(session_id="s-1"), "up")
    assert first.report.header() == ""
    second = await translator.complete(
        request(session_id="s-1", messages=[{"role": "user", "content": "Again"}]), "up"
    )
    assert second.report.header() == ""
    # ... and it is kept: the second call carries the first turn and its answer.
    sent = [m["content"] for m in upstream.bodies[1]["messages"]]
    assert sent == ["Hello", "Hi there", "Again"]
    metadata = {"metadata": {"session_id": "s-2", "allow_retention": False}}
    third = await translator.complete(request(vlmrun=metadata), "up")
    assert third.report.header() == ""
    assert third.report.emulated == ["vlmrun.metadata"]


async def test_an_upstream_keeping_sessions_is_told_what_it_is_not_sent(
    upstream: Upstream,
) -> None:
    t = make(upstream.base_url, options={"keeps_sessions": True})
    vlmrun = {"metadata": {"environment": "dev"}}
    done = await t.complete(request(session_id="s-1", vlmrun=vlmrun), "up")
    await t.aclose()
    # Nobody keeps the conversation: neither is emulated, both are dropped.
    assert done.report.dropped == ["session_id", "vlmrun.metadata"]
    assert done.report.emulated == []


async def test_a_matrix_override_forwards_the_vlm_extensions(upstream: Upstream) -> None:
    forward = {"session_id": Treatment.SUPPORTED, "vlmrun": Treatment.SUPPORTED}
    t = make(upstream.base_url, matrix=forward)
    vlmrun = {"domain": "document.invoice", "metadata": {"environment": "dev"}}
    done = await t.complete(request(session_id="s-1", vlmrun=vlmrun), "up")
    await t.aclose()
    body = upstream.bodies[0]
    assert body["session_id"] == "s-1"
    assert body["vlmrun"]["domain"] == "document.invoice"
    assert body["vlmrun"]["metadata"]["environment"] == "dev"
    assert done.report.actions == []
    assert t.backend("up").keeps_sessions
    assert done.response.session_id == "s-1"


async def test_unknown_fields_pass_through_by_default(
    upstream: Upstream, translator: Translator
) -> None:
    done = await translator.complete(request(top_k=20, chat_template_kwargs={"a": 1}), "up")
    assert upstream.bodies[0]["top_k"] == 20
    assert upstream.bodies[0]["chat_template_kwargs"] == {"a": 1}
    assert done.report.actions == []


async def test_the_unknown_fields_option(upstream: Upstream) -> None:
    t = make(upstream.base_url, options={"unknown_fields": "ignored"})
    done = await t.complete(request(top_k=20), "up")
    assert "top_k" not in upstream.bodies[0]
    assert done.report.dropped == ["top_k"]
    strict = make(upstream.base_url, options={"unknown_fields": "rejected"})
    with pytest.raises(UnsupportedFieldError) as caught:
        await strict.complete(request(top_k=20), "up")
    assert caught.value.param == "top_k"
    await t.aclose()
    await strict.aclose()


async def test_extension_content_parts_are_refused_by_default(
    upstream: Upstream, translator: Translator
) -> None:
    content = [{"type": "text", "text": "see"}, {"type": "input_file", "file_id": "file-1"}]
    body = request(messages=[{"role": "user", "content": content}])
    with pytest.raises(UnsupportedFieldError) as caught:
        await translator.complete(body, "up")
    assert (caught.value.status, caught.value.param) == (400, "messages[0].content[1]")
    assert upstream.bodies == []
    lenient = await translator.complete(body, "up", mode=Mode.LENIENT)
    assert lenient.report.dropped == ["messages[0].content[1]"]
    assert upstream.bodies[0]["messages"][0]["content"] == [{"type": "text", "text": "see"}]


async def test_logprobs_are_reported_dropped(upstream: Upstream, translator: Translator) -> None:
    done = await translator.complete(request(logprobs=True, top_logprobs=2), "up")
    assert set(done.report.dropped) == {"logprobs", "top_logprobs"}
    assert "logprobs" not in upstream.bodies[0]


async def test_the_model_option(upstream: Upstream) -> None:
    one = make(upstream.base_url, options={"model": "served-model"})
    await one.complete(request(), "up")
    table = make(upstream.base_url, options={"model": {"my-model": "mapped"}})
    await table.complete(request(), "up")
    await table.complete(request(model="other"), "up")
    assert [b["model"] for b in upstream.bodies] == ["served-model", "mapped", "other"]
    await one.aclose()
    await table.aclose()


async def test_a_stream_request_body_never_reaches_complete(
    upstream: Upstream, translator: Translator
) -> None:
    await translator.complete(request(stream=True, stream_options={"include_usage": True}), "up")
    assert "stream" not in upstream.bodies[0]
    assert "stream_options" not in upstream.bodies[0]


# -- upstream errors -------------------------------------------------------------

OPENAI_ERROR = {
    "error": {
        "message": "Invalid value for 'temperature'.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
}


async def test_an_upstream_400_is_passed_through_and_not_retried(
    upstream: Upstream, translator: Translator, pauses: list[float]
) -> None:
    upstream.then(json_reply(OPENAI_ERROR, 400), json_reply(COMPLETION))
    with pytest.raises(UpstreamStatusError) as caught:
        await translator.complete(request(), "up")
    assert caught.value.status == 400
    assert caught.value.to_openai() == OPENAI_ERROR
    assert len(upstream.bodies) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upstream_refusing_our_key_is_a_502_not_the_clients_401(
    upstream: Upstream, translator: Translator, status: int
) -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-up***key.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    upstream.then(json_reply(body, status), json_reply(COMPLETION))
    with pytest.raises(UpstreamStatusError) as caught:
        await translator.complete(request(), "up")
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_authentication_failed")
    assert "refused the translator's credentials" in error["message"]
    assert "sk-up" not in error["message"]
    assert len(upstream.bodies) == 1


async def test_an_upstream_500_is_a_502_with_its_message(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(
        json_reply({"error": {"message": "CUDA out of memory", "type": "server_error"}}, 500)
    )
    with pytest.raises(UpstreamStatusError) as caught:
        await translator.complete(request(), "up")
    assert caught.value.status == 502
    assert caught.value.message == "CUDA out of memory"
    assert caught.value.error_type == "server_error"


async def test_a_plain_string_error_keeps_the_message(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(json_reply({"error": "model 'x' not found"}, 404))
    with pytest.raises(UpstreamStatusError) as caught:
        await translator.complete(request(), "up")
    assert (caught.value.status, caught.value.message) == (404, "model 'x' not found")
    assert caught.value.error_type == "not_found_error"


async def test_a_503_then_success(
    upstream: Upstream, translator: Translator, pauses: list[float]
) -> None:
    upstream.then(json_reply(OPENAI_ERROR, 503, {"Retry-After": "0"}))
    done = await translator.complete(request(), "up")
    assert done.response.choices[0].message.content == "Hi there"
    assert len(upstream.bodies) == 2
    assert pauses == [0.0]


@pytest.mark.parametrize("status", [502, 504])
async def test_a_chat_completion_creates_nothing_so_a_gateway_error_is_retried(
    upstream: Upstream, translator: Translator, pauses: list[float], status: int
) -> None:
    upstream.then(json_reply({"error": {"message": "gateway"}}, status))
    done = await translator.complete(request(), "up")
    assert done.response.choices[0].message.content == "Hi there"
    assert len(upstream.bodies) == 2

    upstream.then(json_reply({"error": {"message": "gateway"}}, status), upstream.sse(STREAM))
    chunks = [c async for c in await translator.stream(request(stream=True), "up")]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert len(upstream.bodies) == 4


async def test_a_turn_of_a_session_the_upstream_keeps_is_not_repeated_after_a_502(
    upstream: Upstream, pauses: list[float]
) -> None:
    t = make(upstream.base_url, matrix={"session_id": Treatment.SUPPORTED})
    upstream.then(json_reply({"error": {"message": "gateway"}}, 502))
    with pytest.raises(UpstreamStatusError) as caught:
        await t.complete(request(session_id="s-1"), "up")
    assert (caught.value.status, len(upstream.bodies)) == (502, 1)
    upstream.then(json_reply({"error": {"message": "gateway"}}, 502))
    done = await t.complete(request(), "up")  # no session: nothing kept, safe to repeat
    await t.aclose()
    assert done.response.choices[0].message.content == "Hi there"
    assert len(upstream.bodies) == 3


async def test_malformed_json_is_a_502(upstream: Upstream, translator: Translator) -> None:
    upstream.then(raw_reply(b'{"id": "x", "choices": [tru'))
    with pytest.raises(MalformedUpstreamError) as caught:
        await translator.complete(request(), "up")
    assert caught.value.status == 502
    assert caught.value.to_openai()["error"]["code"] == "upstream_malformed"


async def test_json_that_is_not_a_completion_is_a_502(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(json_reply({"choices": [{"message": {"content": 3}}]}), json_reply([1, 2]))
    for _ in range(2):
        with pytest.raises(MalformedUpstreamError):
            await translator.complete(request(), "up")


async def test_a_slow_upstream_is_a_504(upstream: Upstream) -> None:
    upstream.then(slow_reply(1.0))
    t = make(upstream.base_url, read_timeout=0.1, retries=2)
    with pytest.raises(UpstreamTimeoutError) as caught:
        await t.complete(request(), "up")
    await t.aclose()
    assert caught.value.status == 504
    assert len(upstream.bodies) == 1


async def test_a_refused_connection_is_a_502(pauses: list[float]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    t = make(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(UpstreamUnavailableError) as caught:
        await t.complete(request(), "up")
    with pytest.raises(UpstreamUnavailableError):
        await _first(t)
    await t.aclose()
    assert caught.value.status == 502
    assert len(pauses) == 4


async def _first(t: Translator) -> ChatChunk:
    stream = await t.stream(request(stream=True), "up")
    async for c in stream:
        return c
    raise AssertionError("no chunk")


# -- streams -------------------------------------------------------------------


async def collect(t: Translator, body: bytes) -> list[ChatChunk]:
    stream = await t.stream(body, "up")
    return [c async for c in stream]


async def drain(t: Translator, into: list[ChatChunk]) -> None:
    """Stream a request into ``into`` (what arrived before an error stays there)."""
    stream = await t.stream(request(stream=True), "up")
    async for c in stream:
        into.append(c)


async def test_a_stream_end_to_end(upstream: Upstream, translator: Translator) -> None:
    upstream.then(upstream.sse(STREAM))
    chunks = await collect(translator, request(stream=True, stream_options={"include_usage": True}))
    assert upstream.bodies[0]["stream"] is True
    assert upstream.bodies[0]["stream_options"] == {"include_usage": True}
    assert upstream.headers[0]["Accept"] == "text/event-stream"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert isinstance(usage, Usage)
    assert usage.total_tokens == 5
    assert {c.id for c in chunks} == {"chatcmpl-s"}


async def test_a_stream_split_at_every_byte(upstream: Upstream, translator: Translator) -> None:
    wire = b"".join(STREAM).replace(b"\n", b"\r\n")
    upstream.then(upstream.sse([wire[i : i + 1] for i in range(len(wire))]))
    chunks = await collect(translator, request(stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"


async def test_a_stream_is_asked_for_even_without_stream_true(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(upstream.sse(STREAM))
    await collect(translator, request())
    assert upstream.bodies[0]["stream"] is True


async def test_tool_call_deltas(upstream: Upstream, translator: Translator) -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    more = {"index": 0, "function": {"arguments": '{"a": 1}'}}
    upstream.then(
        upstream.sse(
            [
                chunk({"role": "assistant", "tool_calls": [call]}),
                chunk({"tool_calls": [more]}),
                chunk({}, "tool_calls"),
                b"data: [DONE]\n\n",
            ]
        )
    )
    chunks = await collect(translator, request(stream=True))
    first = chunks[0].choices[0].delta.tool_calls
    assert first is not msgspec.UNSET
    assert first[0].id == "call_1"
    assert chunks[2].choices[0].finish_reason == "tool_calls"


async def test_nulls_and_missing_fields_are_tolerated(
    upstream: Upstream, translator: Translator
) -> None:
    odd = {"choices": [{"index": 0, "delta": {"role": None, "content": "x", "tool_calls": None}}]}
    upstream.then(
        upstream.sse([b"data: " + json.dumps(odd).encode() + b"\n\n", b"data: [DONE]\n\n"])
    )
    [only] = await collect(translator, request(stream=True))
    assert only.choices[0].delta.content == "x"
    assert only.model == "my-model"


async def test_done_without_its_blank_line_ends_cleanly(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(upstream.sse([chunk({"content": "a"}), b"data: [DONE]"]))
    chunks = await collect(translator, request(stream=True))
    assert len(chunks) == 1


async def test_a_stream_without_done_is_an_error(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(upstream.sse(STREAM[:-1]))
    got: list[ChatChunk] = []
    with pytest.raises(MalformedUpstreamError, match="without \\[DONE\\]"):
        await drain(translator, got)
    assert len(got) == 5


async def test_a_stream_cut_mid_way_is_an_error(
    upstream: Upstream, translator: Translator, pauses: list[float]
) -> None:
    upstream.then(upstream.sse(STREAM[:3], abort=True))
    got: list[ChatChunk] = []
    with pytest.raises(MalformedUpstreamError) as caught:
        await drain(translator, got)
    assert caught.value.status == 502
    assert len(got) == 2
    assert len(upstream.bodies) == 1


async def test_an_error_inside_a_stream_is_passed_through(
    upstream: Upstream, translator: Translator
) -> None:
    error = b"data: " + json.dumps(OPENAI_ERROR).encode() + b"\n\n"
    upstream.then(upstream.sse([chunk({"content": "a"}), error]))
    stream = await translator.stream(request(stream=True), "up")
    with pytest.raises(UpstreamStatusError) as caught:
        async for _ in stream:
            pass
    assert caught.value.message == "Invalid value for 'temperature'."
    assert caught.value.param == "temperature"
    assert caught.value.code == "invalid_value"


async def test_malformed_json_inside_a_stream(upstream: Upstream, translator: Translator) -> None:
    upstream.then(upstream.sse([b"data: {not json\n\n", b"data: [DONE]\n\n"]))
    stream = await translator.stream(request(stream=True), "up")
    with pytest.raises(MalformedUpstreamError):
        async for _ in stream:
            pass


async def test_a_stream_400_is_passed_through_and_not_retried(
    upstream: Upstream, translator: Translator, pauses: list[float]
) -> None:
    upstream.then(json_reply(OPENAI_ERROR, 400), upstream.sse(STREAM))
    with pytest.raises(UpstreamStatusError) as caught:
        await collect(translator, request(stream=True))
    assert (caught.value.status, caught.value.param) == (400, "temperature")
    assert len(upstream.bodies) == 1


async def test_a_stream_503_then_success(
    upstream: Upstream, translator: Translator, pauses: list[float]
) -> None:
    upstream.then(json_reply(OPENAI_ERROR, 503, {"Retry-After": "0"}), upstream.sse(STREAM))
    chunks = await collect(translator, request(stream=True))
    assert len(chunks) == 5
    assert len(upstream.bodies) == 2


async def test_a_cancelled_stream_closes_the_upstream(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(upstream.endless())
    first = asyncio.Event()

    async def consume() -> None:
        stream = await translator.stream(request(stream=True), "up")
        async for _ in stream:
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.disconnected.wait(), 5)
    assert not translator.context.http.session.connector._acquired  # type: ignore[union-attr]


async def test_a_stream_closed_early_closes_the_upstream(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(upstream.endless())
    stream = await translator.stream(request(stream=True), "up")
    async for c in stream:
        assert c.choices[0].delta.content == "first"
        break
    await stream.aclose()
    await asyncio.wait_for(upstream.disconnected.wait(), 5)
    assert not translator.context.http.session.connector._acquired  # type: ignore[union-attr]


async def test_a_stream_answered_with_a_json_error(
    upstream: Upstream, translator: Translator
) -> None:
    upstream.then(json_reply(OPENAI_ERROR), json_reply(COMPLETION))
    with pytest.raises(UpstreamStatusError) as caught:
        await collect(translator, request(stream=True))
    assert (caught.value.status, caught.value.message) == (502, "Invalid value for 'temperature'.")
    with pytest.raises(MalformedUpstreamError, match="with JSON, not events"):
        await collect(translator, request(stream=True))


async def test_an_error_event_inside_a_stream(upstream: Upstream, translator: Translator) -> None:
    error = b"event: error\ndata: " + json.dumps(OPENAI_ERROR["error"]).encode() + b"\n\n"
    upstream.then(
        upstream.sse([chunk({"content": "a"}), error]),
        upstream.sse([b"event: error\ndata: oops\n\n"]),
    )
    with pytest.raises(UpstreamStatusError) as caught:
        await collect(translator, request(stream=True))
    assert (caught.value.message, caught.value.param) == (
        "Invalid value for 'temperature'.",
        "temperature",
    )
    with pytest.raises(MalformedUpstreamError, match="reported an error in its stream: oops"):
        await collect(translator, request(stream=True))


async def test_backends_of_one_translator_share_one_pooled_session(upstream: Upstream) -> None:
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[openai_compat])
    config = {
        name: BackendSettings(plugin="openai-compatible", base_url=upstream.base_url)
        for name in ("a", "b")
    }
    t = Translator.from_settings(config, plugin_manager=pm)
    await t.complete(request(), "a")
    await t.complete(request(), "b")
    a, b = t.backend("a"), t.backend("b")
    assert isinstance(a, openai_compat.OpenAICompatBackend)
    assert isinstance(b, openai_compat.OpenAICompatBackend)
    assert a.http.client is b.http.client is t.context.http
    session = t.context.http.session
    await t.aclose()
    assert session.closed


# -- bounds and secrets --------------------------------------------------------


def endless_line(upstream: Upstream) -> Reply:
    """Streams one chunk, then a data line that never ends, until the client goes away."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk({"role": "assistant", "content": "first"}))
        await response.write(b"data: ")
        try:
            while True:
                await response.write(b"x" * 4096)
                await asyncio.sleep(0)
        finally:  # a write to a closed connection, or the handler cancelled
            upstream.disconnected.set()

    return reply


async def test_a_line_that_never_ends_is_cut_off_at_the_bound(
    upstream: Upstream, translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SSEDecoder, "MAX_EVENT_BYTES", 64 * 1024)
    upstream.then(endless_line(upstream))
    got: list[ChatChunk] = []
    with pytest.raises(MalformedUpstreamError, match="longer than 65536 bytes") as caught:
        await asyncio.wait_for(drain(translator, got), 10)
    assert caught.value.status == 502
    assert [c.choices[0].delta.content for c in got] == ["first"]
    await asyncio.wait_for(upstream.disconnected.wait(), 5)


def feed_all(decoder: SSEDecoder, pieces: list[bytes]) -> list[bytes]:
    events = [e for piece in pieces for e in decoder.feed(piece)]
    return [e.data for e in events + decoder.close()]


def whole(wire: bytes) -> list[bytes]:
    return [wire]


def bytewise(wire: bytes) -> list[bytes]:
    return [wire[i : i + 1] for i in range(len(wire))]


def in_pieces_of_7(wire: bytes) -> list[bytes]:
    return [wire[i : i + 7] for i in range(0, len(wire), 7)]


SPLITS = [whole, bytewise, in_pieces_of_7]
BOUND = 40


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize(
    ("wire", "first"),
    [
        (b"data: " + b"x" * BOUND + b"\n\ndata: next\n\n", b"x" * BOUND),
        (b"data: " + b"x" * 19 + b"\ndata: " + b"y" * 20 + b"\n\ndata: next\n\n", None),
        (b"event: e\ndata:" + b"z" * BOUND + b"\n\ndata: next\n\n", b"z" * BOUND),
        (b"data: " + b"x" * BOUND, b"x" * BOUND),  # ended by the end of the body
    ],
    ids=["one-line", "two-lines", "no-space", "unterminated"],
)
def test_an_event_of_exactly_the_bound_is_read(
    wire: bytes, first: bytes | None, newline: bytes, split: Callable[[bytes], list[bytes]]
) -> None:
    data = feed_all(SSEDecoder(BOUND), split(wire.replace(b"\n", newline)))
    assert data[0] == (first or b"x" * 19 + b"\n" + b"y" * 20)
    assert len(data[0]) == BOUND
    assert data[1:] == ([b"next"] if wire.endswith(b"next\n\n") else [])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize(
    "wire",
    [
        b"data: " + b"x" * (BOUND + 1) + b"\n\n",
        b"data: " + b"x" * 20 + b"\ndata: " + b"y" * 20 + b"\n\n",
        b"data:" + b"z" * (BOUND + 1) + b"\n\n",
        b"data: a\n" * 100,  # many lines, never a blank one
        b"data: " + b"x" * 100,  # a line that never ends
        b": " + b"c" * 100,  # a comment that never ends
    ],
    ids=["one-line", "two-lines", "no-space", "many-lines", "endless-line", "endless-comment"],
)
def test_an_event_over_the_bound_is_malformed(
    wire: bytes, newline: bytes, split: Callable[[bytes], list[bytes]]
) -> None:
    decoder = SSEDecoder(BOUND)
    with pytest.raises(MalformedUpstreamError, match="longer than 40 bytes"):
        feed_all(decoder, split(wire.replace(b"\n", newline)))


def test_the_default_bound_is_8_mib() -> None:
    assert SSEDecoder.MAX_EVENT_BYTES == 8 * 1024 * 1024
    big = b"data: " + b"x" * (8 * 1024 * 1024) + b"\n\n"
    assert [len(d) for d in feed_all(SSEDecoder(), in_pieces_of_64k(big))] == [8 * 1024 * 1024]
    with pytest.raises(MalformedUpstreamError):
        feed_all(SSEDecoder(), in_pieces_of_64k(big[:-2] + b"x\n\n"))


def in_pieces_of_64k(wire: bytes) -> list[bytes]:
    return [wire[i : i + 65536] for i in range(0, len(wire), 65536)]


async def test_an_upstream_quoting_our_key_does_not_show_it_to_the_client(
    upstream: Upstream, translator: Translator
) -> None:
    async def quoting(request: web.Request) -> web.StreamResponse:
        said = f"Header {request.headers['Authorization']} is not for this model"
        return web.json_response({"error": {"message": said, "type": "x"}}, status=400)

    upstream.then(quoting)
    with pytest.raises(UpstreamStatusError) as caught:
        await translator.complete(request(), "up")
    assert upstream.headers[0]["Authorization"] == "Bearer sk-test"
    assert caught.value.status == 400
    assert caught.value.message == "Header [redacted] is not for this model"
