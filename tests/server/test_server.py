"""The server over real HTTP on loopback: routes, errors, limits, keys, streams."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_exceptions import ContentLengthError
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from translator_plugins.echo import MATRIX as ECHO_MATRIX
from translator_plugins.echo import EchoBackend

from translator import hookimpl
from translator._backend import Backend, BackendContext, BackendFactory, BackendSettings
from translator._compat import Treatment
from translator._model import ChatChunk, ChatRequest, ChatResponse, TextPart, UserMessage
from translator._plugins import get_plugin_manager
from translator._streaming import ChunkStream
from translator.config import ConfigError, parse_config
from translator.errors import InvalidRequestError, UpstreamStatusError
from translator.server import TRANSLATOR, create_app, serving
from translator.server._body import read_body

HELLO = {"model": "echo", "messages": [{"role": "user", "content": "Hello"}]}


class Scripted(Backend):
    """A backend that misbehaves on cue (``options.script``) and records what happened."""

    def __init__(self, name: str, script: str) -> None:
        self.name = name
        self.matrix = ECHO_MATRIX.with_treatments({"stream": Treatment.SUPPORTED})
        self.script = script
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.closed = False
        self.seen: list[ChatRequest] = []

    def _text(self, request: ChatRequest) -> str:
        message = request.messages[-1]
        assert isinstance(message, UserMessage)
        content = message.content
        return (
            content
            if isinstance(content, str)
            else " ".join(p.text for p in content if isinstance(p, TextPart))
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        if self.script == "crash":
            raise RuntimeError(f"crashed on {self._text(request)}")
        if self.script == "hang":
            return await self._hang()
        return EchoBackend(self.name).answer(request)

    async def _hang(self) -> ChatResponse:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.seen.append(request)
        chunks = ChunkStream(request.model)
        if self.script == "refuse":
            raise UpstreamStatusError("the upstream says no", status=429, backend=self.name)
        yield chunks.text("first ")
        if self.script == "fail-midstream":
            raise UpstreamStatusError("the upstream fell over", status=502, backend=self.name)
        if self.script == "crash":
            raise RuntimeError(f"crashed on {self._text(request)}")
        if self.script == "hang":
            await self._hang()
        yield chunks.text("second")
        yield chunks.finish()

    async def aclose(self) -> None:
        self.closed = True


class ScriptedPlugin:
    """Registers the ``scripted`` backend plugin and keeps every backend it built."""

    def __init__(self) -> None:
        self.built: dict[str, Scripted] = {}

    @hookimpl
    def register_backends(self, register: Callable[[BackendFactory], None]) -> None:
        plugin = self

        class Factory:
            plugin_name = "scripted"
            description = "misbehaves on cue"

            def create(
                self, name: str, settings: BackendSettings, context: BackendContext
            ) -> Backend:
                backend = Scripted(name, str(settings.options.get("script", "")))
                plugin.built[name] = backend
                return backend

        register(Factory())


@pytest.fixture
def plugin() -> ScriptedPlugin:
    return ScriptedPlugin()


AppFactory = Callable[..., Coroutine[Any, Any, TestClient[web.Request, web.Application]]]


@pytest.fixture
async def client_for(plugin: ScriptedPlugin) -> AsyncIterator[AppFactory]:
    """``await client_for(toml)``: a test client for the server that config describes."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(toml: str = "", **kwargs: Any) -> TestClient[web.Request, web.Application]:
        pm = get_plugin_manager(entry_points=False, plugins=[plugin])
        app = create_app(parse_config(toml), plugin_manager=pm, **kwargs)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


# -- routes ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/v1/health", "/v1/openai/health"])
async def test_health_is_open_even_with_keys(client_for: AppFactory, path: str) -> None:
    client = await client_for('[server]\napi_keys = ["k1"]')
    response = await client.get(path)
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


@pytest.mark.parametrize("prefix", ["/v1", "/v1/openai"])
async def test_chat_completion_under_both_prefixes(client_for: AppFactory, prefix: str) -> None:
    client = await client_for()
    response = await client.post(f"{prefix}/chat/completions", json=HELLO)
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello"
    assert body["usage"]["total_tokens"] > 0


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    config = parse_config('[server]\napi_keys = ["k1"]\n[backends.e]\nplugin = "echo"\n')
    async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
        for scheme in ("Bearer", "bearer", "BEARER"):
            headers = {"Authorization": f"{scheme} k1"}
            async with session.get(f"{root}/v1/models", headers=headers) as response:
                assert response.status == 200, scheme


async def test_only_the_bearer_scheme_with_a_known_key_is_accepted() -> None:
    config = parse_config('[server]\napi_keys = ["k1"]\n[backends.e]\nplugin = "echo"\n')
    async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
        for header in ("Basic k1", "Bearer", "Bearer k2", "Bearerk1", "k1"):
            headers = {"Authorization": header}
            async with session.get(f"{root}/v1/models", headers=headers) as response:
                assert response.status == 401, header


async def test_sessions_are_scoped_by_the_callers_key(
    client_for: AppFactory, plugin: ScriptedPlugin
) -> None:
    client = await client_for(
        '[server]\napi_keys = ["k1", "k2"]\n[backends.s]\nplugin = "scripted"\n'
    )

    async def turn(key: str, text: str, stream: bool = False) -> int:
        """Send one turn of session ``shared``; how many messages the backend got."""
        body = {
            "model": "m",
            "session_id": "shared",
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"Authorization": f"Bearer {key}"}
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status == 200
        if stream:
            assert (await response.text()).endswith("data: [DONE]\n\n")
        return len(plugin.built["s"].seen[-1].messages)

    assert await turn("k1", "I am Ada.") == 1
    assert await turn("k1", "Who am I?") == 3  # the same caller continues its session
    assert await turn("k2", "I am Bob.") == 1  # another caller's same id is another session
    assert await turn("k2", "Who am I?", stream=True) == 3
    assert await turn("k1", "And now?", stream=True) == 5
    # Stored under a hash of the key, never the key itself, nor the bare id.
    store = client.app[TRANSLATOR].sessions  # type: ignore[index]
    assert store is not None
    assert await store.load("shared") == []
    assert await store.load("k1/shared") == []


async def test_without_keys_every_caller_shares_the_session_ids(
    client_for: AppFactory, plugin: ScriptedPlugin
) -> None:
    client = await client_for('[backends.s]\nplugin = "scripted"\n')
    for expected in (1, 3):
        body = {"model": "m", "session_id": "s", "messages": [{"role": "user", "content": "x"}]}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 200
        assert len(plugin.built["s"].seen[-1].messages) == expected


async def test_models_lists_routed_models_in_openai_shape(client_for: AppFactory) -> None:
    client = await client_for(
        """
        [backends.fast]
        plugin = "echo"
        [backends.slow]
        plugin = "echo"
        [[routes]]
        model = "gpt-mini"
        backend = "fast"
        [[routes]]
        model = "big-*"
        backend = "slow"
        """
    )
    body = await (await client.get("/v1/openai/models")).json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    # The exact route only: a prefix names no model, and a backend's name is none.
    assert set(cards) == {"gpt-mini"}
    assert cards["gpt-mini"]["owned_by"] == "fast"
    assert cards["gpt-mini"]["object"] == "model"
    routed = await (await client.get("/v1/models/big-2")).json()
    assert routed["owned_by"] == "slow"
    for name in ("nothing", "fast"):
        missing = await client.get(f"/v1/models/{name}")
        assert missing.status == 404
        assert (await error_of(missing))["code"] == "model_not_found"


async def test_models_lists_the_names_backends_map_where_routes_lead(
    client_for: AppFactory,
) -> None:
    client = await client_for(
        """
        default_backend = "a"
        [backends.a]
        plugin = "scripted"
        options = { models = { "gpt-4o" = "llava", "other" = "x" } }
        [backends.b]
        plugin = "scripted"
        options = { models = { "big-1" = "y", "elsewhere" = "z" }, model = { "big-2" = "w" } }
        [[routes]]
        model = "big-*"
        backend = "b"
        [[routes]]
        model = "other"
        backend = "b"
        """
    )
    body = await (await client.get("/v1/models")).json()
    listed = {card["id"]: card["owned_by"] for card in body["data"]}
    # 'other' is a's name, but routed to b; 'elsewhere' goes to the default, a, not to b.
    assert listed == {"other": "b", "gpt-4o": "a", "big-1": "b", "big-2": "b"}
    for model in listed:
        response = await client.post("/v1/chat/completions", json={**HELLO, "model": model})
        assert response.status == 200, model


async def test_requests_route_by_model_with_prefixes(
    client_for: AppFactory, plugin: ScriptedPlugin
) -> None:
    client = await client_for(
        """
        [backends.a]
        plugin = "scripted"
        [backends.b]
        plugin = "scripted"
        [[routes]]
        model = "vlm-*"
        backend = "a"
        [[routes]]
        model = "vlm-agent-*"
        backend = "b"
        """
    )
    for model, backend in [("vlm-1", "a"), ("vlm-agent-1", "b")]:
        response = await client.post("/v1/chat/completions", json={**HELLO, "model": model})
        assert response.status == 200
        assert plugin.built[backend].seen[-1].model == model
    # Neither an unrouted name nor a backend's own name is a model.
    for model in ("gpt-4o", "b"):
        unknown = await client.post("/v1/chat/completions", json={**HELLO, "model": model})
        assert unknown.status == 404
        error = await error_of(unknown)
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert f"'{model}'" in error["message"]


# -- errors are OpenAI bodies ----------------------------------------------------


async def test_unknown_route_is_an_openai_404(client_for: AppFactory) -> None:
    client = await client_for()
    response = await client.get("/v1/openai/completions/legacy")
    assert response.status == 404
    assert "Invalid URL" in (await error_of(response))["message"]


async def test_wrong_method_is_an_openai_405(client_for: AppFactory) -> None:
    client = await client_for()
    response = await client.get("/v1/chat/completions")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert (await error_of(response))["code"] == "method_not_allowed"


async def test_invalid_json_is_an_openai_400(client_for: AppFactory) -> None:
    client = await client_for()
    response = await client.post(
        "/v1/chat/completions", data=b'{"model": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await error_of(response))["code"] == "invalid_json"


async def test_invalid_field_names_its_path(client_for: AppFactory) -> None:
    client = await client_for()
    bad = {**HELLO, "messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}
    response = await client.post("/v1/chat/completions", json=bad)
    assert response.status == 400
    assert (await error_of(response))["param"] == "messages[0].content[0].text"


async def test_wrong_content_type_is_refused(client_for: AppFactory) -> None:
    client = await client_for()
    response = await client.post(
        "/v1/chat/completions", data=json.dumps(HELLO), headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert "application/json" in (await error_of(response))["message"]


async def test_unexpected_exception_is_a_logged_500_without_traceback(
    client_for: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for('[backends.s]\nplugin = "scripted"\noptions = {script = "crash"}')
    with caplog.at_level(logging.ERROR, logger="translator.server"):
        response = await client.post("/v1/chat/completions", json={**HELLO, "model": "s"})
    assert response.status == 500
    error = await error_of(response)
    assert error["type"] == "server_error"
    assert "Traceback" not in error["message"]
    assert "crashed" not in error["message"]
    rid = response.headers["x-request-id"]
    assert rid in error["message"]
    assert any(r.exc_info and "crashed on Hello" in str(r.exc_info[1]) for r in caplog.records)


# -- limits ----------------------------------------------------------------------


async def test_body_over_the_limit_is_a_413(client_for: AppFactory) -> None:
    client = await client_for("[server.limits]\nmax_body_bytes = 200")
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 500}]}
    response = await client.post("/v1/chat/completions", json=big)
    assert response.status == 413
    assert (await error_of(response))["type"] == "invalid_request_error"
    assert (await client.post("/v1/chat/completions", json=HELLO)).status == 200


async def test_chunked_body_over_the_limit_is_a_413(client_for: AppFactory) -> None:
    client = await client_for("[server.limits]\nmax_body_bytes = 200")

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 50

    response = await client.post(
        "/v1/chat/completions", data=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_a_compressed_json_body_is_read_whole(
    client_for: AppFactory, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    client = await client_for()
    long_hello = {**HELLO, "messages": [{"role": "user", "content": "Hello " * 200}]}
    body = compress(json.dumps(long_hello).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    response = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert response.status == 200
    reply = await response.json()
    assert reply["choices"][0]["message"]["content"] == "Hello " * 200


async def test_a_compressed_body_over_the_limit_once_decoded_is_a_413(
    client_for: AppFactory,
) -> None:
    client = await client_for("[server.limits]\nmax_body_bytes = 200")
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 5000}]}
    body = gzip.compress(json.dumps(big).encode())
    assert len(body) < 200
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert response.status == 413


async def test_a_body_that_does_not_decode_is_a_400(
    client_for: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post("/v1/chat/completions", data=b"not gzip at all", headers=headers)
    assert response.status == 400
    assert (await error_of(response))["code"] == "invalid_body"
    assert "Traceback" not in caplog.text
    assert (await client.post("/v1/chat/completions", json=HELLO)).status == 200
    assert all(r.levelno < logging.ERROR for r in caplog.records)


@pytest.mark.parametrize(
    ("encoding", "end"),
    [(None, None), (None, ConnectionResetError("Connection lost")), ("gzip", None)],
    ids=["shorter-than-announced", "client-gone", "decoded-stream-cut"],
)
async def test_a_body_cut_short_is_a_400(encoding: str | None, end: Exception | None) -> None:
    protocol = mock.Mock(_reading_paused=False)
    payload = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(b'{"model": "echo", ')
    if end is None and encoding:
        end = ContentLengthError("Not enough data to satisfy content length header.")
    if end is None:
        payload.feed_eof()
    else:
        payload.set_exception(end)
    headers = {"Content-Type": "application/json", "Content-Length": "100"}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = make_mocked_request("POST", "/v1/chat/completions", headers=headers, payload=payload)
    with pytest.raises(InvalidRequestError) as caught:
        await read_body(request, 1000)
    assert (caught.value.status, caught.value.code) == (400, "invalid_body")


async def test_too_many_messages_is_a_400_on_messages(client_for: AppFactory) -> None:
    client = await client_for("[server.limits]\nmax_messages = 2")
    many = {**HELLO, "messages": [{"role": "user", "content": "hi"}] * 3}
    response = await client.post("/v1/chat/completions", json=many)
    assert response.status == 400
    error = await error_of(response)
    assert error["param"] == "messages"
    assert error["code"] == "too_many_messages"


async def test_request_past_its_deadline_is_a_504_and_the_backend_call_is_cancelled(
    client_for: AppFactory, plugin: ScriptedPlugin
) -> None:
    client = await client_for(
        '[server.limits]\nrequest_timeout = 0.2\n[backends.s]\nplugin = "scripted"\n'
        'options = {script = "hang"}'
    )
    response = await client.post("/v1/chat/completions", json={**HELLO, "model": "s"})
    assert response.status == 504
    assert (await error_of(response))["code"] == "request_timeout"
    assert plugin.built["s"].cancelled.is_set()


# -- API keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "k1", "Basic azE=", "Bearer ", "Bearer k1x"]
)
async def test_missing_or_wrong_key_is_a_401(
    client_for: AppFactory, authorization: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for('[server]\napi_keys = ["k1", "k2"]')
    headers = {"Authorization": authorization} if authorization else {}
    with caplog.at_level(logging.DEBUG):
        response = await client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert response.status == 401
    error = await error_of(response)
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    if authorization:
        assert authorization not in caplog.text


@pytest.mark.parametrize("key", ["k1", "k2"])
async def test_each_configured_key_is_accepted_and_never_logged(
    client_for: AppFactory, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for('[server]\napi_keys = ["k1", "k2"]')
    with caplog.at_level(logging.DEBUG):
        response = await client.post(
            "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
        )
        files = await client.get("/v1/files", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    assert files.status == 200
    assert f"Bearer {key}" not in caplog.text


async def test_keys_from_the_environment(client_for: AppFactory) -> None:
    client = await client_for('[server]\napi_keys_env = "KEYS"', environ={"KEYS": "alpha, beta"})
    ok = await client.post("/v1/models", headers={"Authorization": "Bearer beta"})
    assert ok.status == 405  # authorized, then the wrong method
    refused = await client.get("/v1/models", headers={"Authorization": "Bearer gamma"})
    assert refused.status == 401


def test_a_keys_variable_that_is_not_set_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="KEYS"):
        create_app(parse_config('[server]\napi_keys_env = "KEYS"'), environ={})


# -- request ids, logs -------------------------------------------------------------


async def test_every_response_carries_a_request_id(client_for: AppFactory) -> None:
    client = await client_for()
    given = await client.post(
        "/v1/chat/completions", json=HELLO, headers={"x-request-id": "client-id-1"}
    )
    assert given.headers["x-request-id"] == "client-id-1"
    ids = set()
    for response in [
        await client.post("/v1/chat/completions", json=HELLO),
        await client.get("/nowhere"),
        await client.post("/v1/chat/completions", json={**HELLO, "model": ""}),
        await client.post("/v1/chat/completions", json={**HELLO, "stream": True}),
    ]:
        assert response.headers["x-request-id"].startswith("req_")
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4
    odd = await client.get("/health", headers={"x-request-id": "bad id\twith tabs"})
    assert odd.headers["x-request-id"].startswith("req_")


async def test_requests_are_logged_as_structured_events(
    client_for: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for()
    with caplog.at_level(logging.INFO, logger="translator.server"):
        response = await client.post("/v1/chat/completions", json=HELLO)
    record = next(r for r in caplog.records if getattr(r, "event", None) == "request")
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["request_id"] == response.headers["x-request-id"]
    assert fields["status"] == 200
    assert fields["model"] == "echo"
    assert fields["backend"] == "echo"


async def test_a_model_name_cannot_forge_a_text_log_line(
    client_for: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for()
    forged = "echo\nINFO translator.server request status=200 model=\u2028x"
    with caplog.at_level(logging.INFO, logger="translator.server"):
        await client.post("/v1/chat/completions", json={**HELLO, "model": forged})
    record = next(r for r in caplog.records if getattr(r, "event", None) == "request")
    line = logging.Formatter("%(message)s").format(record)
    assert len(line.splitlines()) == 1
    assert 'model="echo\\nINFO translator.server request status=200 model=\\u2028x"' in line
    assert record.fields["model"] == forged  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True])
async def test_allow_logging_false_keeps_content_out_of_every_log(
    client_for: AppFactory, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    client = await client_for('[backends.s]\nplugin = "scripted"\noptions = {script = "crash"}')
    secret = "my-card-number-4111"
    body = {
        "model": "s",
        "messages": [{"role": "user", "content": secret}],
        "stream": stream,
        "vlmrun": {"metadata": {"allow_logging": False}},
    }
    with caplog.at_level(logging.DEBUG):
        response = await client.post("/v1/chat/completions", json=body)
        await response.read()
    assert caplog.records  # the failure was logged...
    assert secret not in caplog.text  # ...without what the user sent
    for record in caplog.records:
        assert not record.exc_info or secret not in str(record.exc_info[1])


# -- the compat matrix over HTTP -----------------------------------------------------


async def test_ignored_fields_are_reported_in_a_header(client_for: AppFactory) -> None:
    client = await client_for(
        '[backends.echo]\nplugin = "echo"\nmatrix = {max_tokens = "ignored", seed = "ignored"}'
    )
    response = await client.post("/v1/chat/completions", json={**HELLO, "max_tokens": 5, "seed": 1})
    assert response.status == 200
    assert [p.strip() for p in response.headers["x-translator-ignored"].split(",")] == [
        "max_tokens",
        "seed",
    ]
    plain = await client.post("/v1/chat/completions", json=HELLO)
    assert "x-translator-ignored" not in plain.headers


async def test_rejected_field_is_a_400_naming_it_unless_lenient(client_for: AppFactory) -> None:
    client = await client_for('[backends.echo]\nplugin = "echo"\nmatrix = {logprobs = "rejected"}')
    asked = {**HELLO, "logprobs": True}
    strict = await client.post("/v1/chat/completions", json=asked)
    assert strict.status == 400
    error = await error_of(strict)
    assert error["param"] == "logprobs"
    assert error["code"] == "unsupported_parameter"
    lenient = await client.post(
        "/v1/chat/completions", json=asked, headers={"x-translator-compat": "lenient"}
    )
    assert lenient.status == 200
    assert lenient.headers["x-translator-ignored"] == "logprobs"
    bad = await client.post(
        "/v1/chat/completions", json=asked, headers={"x-translator-compat": "loose"}
    )
    assert bad.status == 400
    assert "x-translator-compat" in (await error_of(bad))["message"]


async def test_server_wide_lenient_mode(client_for: AppFactory) -> None:
    client = await client_for(
        '[server]\ncompat = "lenient"\n[backends.echo]\nplugin = "echo"\n'
        'matrix = {logprobs = "rejected"}'
    )
    response = await client.post("/v1/chat/completions", json={**HELLO, "logprobs": True})
    assert response.status == 200
    assert response.headers["x-translator-ignored"] == "logprobs"
    strict = await client.post(
        "/v1/chat/completions",
        json={**HELLO, "logprobs": True},
        headers={"x-translator-compat": "strict"},
    )
    assert strict.status == 400


# -- streaming -----------------------------------------------------------------------


def sse_events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events)
    return [e[6:] for e in events]


async def test_stream_is_sse_ending_with_done(client_for: AppFactory) -> None:
    client = await client_for('[backends.echo]\nplugin = "echo"\nmatrix = {max_tokens = "ignored"}')
    response = await client.post(
        "/v1/chat/completions",
        json={**HELLO, "stream": True, "max_tokens": 9, "stream_options": {"include_usage": True}},
    )
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    assert response.headers["x-translator-ignored"] == "max_tokens"
    events = sse_events(await response.read())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0


async def test_error_after_the_stream_started_ends_it_with_an_error_event(
    client_for: AppFactory,
) -> None:
    client = await client_for(
        '[backends.s]\nplugin = "scripted"\noptions = {script = "fail-midstream"}'
    )
    response = await client.post(
        "/v1/chat/completions", json={**HELLO, "model": "s", "stream": True}
    )
    assert response.status == 200
    events = sse_events(await response.read())
    assert "[DONE]" not in events
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "first "
    error = json.loads(events[-1])["error"]
    assert error["message"] == "the upstream fell over"
    assert set(error) == {"message", "type", "param", "code"}


async def test_unexpected_crash_mid_stream_is_an_error_event(client_for: AppFactory) -> None:
    client = await client_for('[backends.s]\nplugin = "scripted"\noptions = {script = "crash"}')
    response = await client.post(
        "/v1/chat/completions", json={**HELLO, "model": "s", "stream": True}
    )
    events = sse_events(await response.read())
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["type"] == "server_error"
    assert "crashed" not in error["message"]


async def test_error_before_the_first_chunk_is_a_plain_http_error(
    client_for: AppFactory,
) -> None:
    client = await client_for('[backends.s]\nplugin = "scripted"\noptions = {script = "refuse"}')
    response = await client.post(
        "/v1/chat/completions", json={**HELLO, "model": "s", "stream": True}
    )
    assert response.status == 429
    assert (await error_of(response))["message"] == "the upstream says no"


async def test_stream_past_its_deadline_ends_with_a_timeout_event(
    client_for: AppFactory, plugin: ScriptedPlugin
) -> None:
    client = await client_for(
        '[server.limits]\nrequest_timeout = 0.3\n[backends.s]\nplugin = "scripted"\n'
        'options = {script = "hang"}'
    )
    response = await client.post(
        "/v1/chat/completions", json={**HELLO, "model": "s", "stream": True}
    )
    events = sse_events(await response.read())
    assert json.loads(events[-1])["error"]["code"] == "request_timeout"
    assert plugin.built["s"].cancelled.is_set()


async def test_client_disconnecting_mid_stream_cancels_the_backend_call(
    plugin: ScriptedPlugin,
) -> None:
    pm = get_plugin_manager(entry_points=False, plugins=[plugin])
    config = parse_config('[backends.s]\nplugin = "scripted"\noptions = {script = "hang"}')
    async with serving(create_app(config, plugin_manager=pm)) as root:
        backend = plugin.built["s"]
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{root}/v1/chat/completions", json={**HELLO, "model": "s", "stream": True}
            )
            assert (await response.content.readuntil(b"\n\n")).startswith(b"data: ")
            await asyncio.wait_for(backend.started.wait(), 5)
            response.close()  # the client goes away mid-stream
        await asyncio.wait_for(backend.cancelled.wait(), 5)


# -- embedding -----------------------------------------------------------------------


async def test_app_mounts_in_another_app_and_closes_its_backends(plugin: ScriptedPlugin) -> None:
    pm = get_plugin_manager(entry_points=False, plugins=[plugin])
    inner = create_app(parse_config('[backends.s]\nplugin = "scripted"'), plugin_manager=pm)
    outer = web.Application()
    outer.add_subapp("/ai", inner)
    async with serving(outer) as root, aiohttp.ClientSession() as session:
        async with session.post(
            f"{root}/ai/v1/openai/chat/completions", json={**HELLO, "model": "s"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"] == "Hello"
            assert response.headers["x-request-id"]
        assert not plugin.built["s"].closed
    assert plugin.built["s"].closed
    assert inner[TRANSLATOR].backend("s") is plugin.built["s"]


async def test_graceful_shutdown_lets_in_flight_requests_finish() -> None:
    config = parse_config('[backends.slow]\nplugin = "echo"\noptions = {delay = 0.3}')
    app = create_app(config)
    async with aiohttp.ClientSession() as session:
        async with serving(app) as root:
            pending = asyncio.ensure_future(
                session.post(f"{root}/v1/chat/completions", json={**HELLO, "model": "slow"})
            )
            await asyncio.sleep(0.1)
        response = await pending  # the server shut down while it was in flight
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "Hello"


def test_json_log_lines_carry_the_event_and_its_fields() -> None:
    from translator.server._logs import JSONFormatter, log_event

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("translator.test-json")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    log_event(logger, logging.INFO, "request", request_id="req_1", status=200, model=None)
    logger.info("plain %s", "text")
    formatter = JSONFormatter()
    event, plain = (json.loads(formatter.format(r)) for r in records)
    assert event["event"] == "request"
    assert (event["request_id"], event["status"], event["level"]) == ("req_1", 200, "info")
    assert plain["message"] == "plain text"
    assert records[0].getMessage() == "request request_id=req_1 status=200"


# -- what aiohttp's HTTP parser refuses ------------------------------------------------


async def test_headers_up_to_the_raised_limit_are_served() -> None:
    config = "[server]\nmax_field_size = 32768\nmax_header_bytes = 65536\n"
    async with serving(create_app(parse_config(config))) as root, aiohttp.ClientSession() as s:
        # Over the default 8 KiB a field, within the limits this configuration raised.
        headers = {"X-Big": "a" * 20_000}
        async with s.get(f"{root}/v1/models", headers=headers) as response:
            assert response.status == 200


@pytest.mark.parametrize("where", ["header", "request line"])
async def test_a_request_over_the_parser_limits_is_an_openai_error_without_a_traceback(
    caplog: pytest.LogCaptureFixture, where: str
) -> None:
    app = create_app(parse_config("[server]\nmax_field_size = 1000\nmax_line_size = 1000\n"))
    caplog.set_level(logging.DEBUG)
    secret = "Bearer " + "s" * 2000
    async with serving(app) as root, aiohttp.ClientSession() as session:
        url, headers = f"{root}/v1/models", {"Authorization": secret}
        if where == "request line":
            url, headers = f"{root}/v1/models?q={'x' * 2000}", {}
        async with session.get(url, headers=headers) as response:
            assert response.status == (414 if where == "request line" else 431)
            assert response.headers["x-request-id"].startswith("req_")
            error = await error_of(response)
    assert error["code"] == ("uri_too_long" if where == "request line" else "header_too_large")
    assert "1000 bytes" in error["message"]
    assert "sss" not in error["message"]
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "translator"))]
    assert not any(r.exc_info for r in records)
    assert not any(r.levelno >= logging.ERROR for r in records)
    (warning,) = [r for r in records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("bad_http_request ")
    assert "sss" not in warning.getMessage()


async def test_bytes_that_are_no_http_get_an_openai_error() -> None:
    async with serving(create_app()) as root:
        host, port = root.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"\x16\x03\x01garbage\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_http_request"


async def test_a_backend_nothing_routes_to_is_a_startup_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(
        '[backends.a]\nplugin = "echo"\n[backends.b]\nplugin = "echo"\n'
        '[[routes]]\nmodel = "m"\nbackend = "a"\n'
    )
    caplog.set_level(logging.WARNING, logger="translator.server")
    async with serving(create_app(config)):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["backend b: no route and no default_backend leads to it"]
