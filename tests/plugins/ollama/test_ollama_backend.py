"""The ollama backend end to end, against a fake Ollama on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import translator_plugins.ollama
from aiohttp.test_utils import TestServer

from tests.ollama_server import PNG, FakeOllama, ImageHost, Script
from translator import Translator
from translator._backend import BackendSettings
from translator._model import ChatChunk
from translator._plugins import get_plugin_manager
from translator.errors import (
    FetchRefusedError,
    InvalidRequestError,
    MalformedUpstreamError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamUnavailableError,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


@pytest.fixture
async def ollama() -> AsyncIterator[tuple[FakeOllama, TestServer]]:
    fake = FakeOllama()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()


@pytest.fixture
async def images() -> AsyncIterator[tuple[ImageHost, TestServer]]:
    host = ImageHost()
    server = TestServer(host.app(), host="127.0.0.1")
    await server.start_server()
    yield host, server
    host.release.set()
    await server.close()


def make_translator(base_url: str, **options: Any) -> Translator:
    settings = BackendSettings(plugin="ollama", base_url=base_url, retries=0, options=options)
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[translator_plugins.ollama])
    return Translator.from_settings({"local": settings}, plugin_manager=pm)


@pytest.fixture
async def translator(ollama: tuple[FakeOllama, TestServer]) -> AsyncIterator[Translator]:
    _, server = ollama
    async with make_translator(
        str(server.make_url("")), fetch={"allow": ["127.0.0.1"]}, models={"gpt-4o": "llava"}
    ) as t:
        yield t


def ask(content: Any, **fields: Any) -> bytes:
    body = {"model": "llava", "messages": [{"role": "user", "content": content}], **fields}
    return json.dumps(body).encode()


async def collect(translator: Translator, body: bytes) -> list[ChatChunk]:
    stream = await translator.stream(body, "local")
    return [chunk async for chunk in stream]


def content_of(chunks: list[ChatChunk]) -> str:
    return "".join(
        c.choices[0].delta.content
        for c in chunks
        if c.choices and isinstance(c.choices[0].delta.content, str)
    )


async def test_a_completion(translator: Translator, ollama: tuple[FakeOllama, TestServer]) -> None:
    fake, _ = ollama
    done = await translator.complete(ask("Hello there friend", model="gpt-4o"), "local")
    response = done.response
    assert response.model == "gpt-4o"
    assert response.choices[0].message.content == "Hello there friend"
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 3)
    assert response.usage.total_tokens == 6
    assert fake.requests[0]["model"] == "llava"
    assert fake.requests[0]["stream"] is False
    assert "options" not in fake.requests[0]


async def test_an_image_by_data_uri(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": uri}},
    ]
    done = await translator.complete(ask(parts), "local")
    assert (
        done.response.choices[0].message.content == f"What is it? [1 image: png {len(PNG)} bytes]"
    )
    assert fake.requests[0]["messages"][0]["images"] == [uri.split(",", 1)[1]]


async def test_an_image_by_url_is_fetched_from_an_allowed_host(
    translator: Translator,
    images: tuple[ImageHost, TestServer],
) -> None:
    host, server = images
    url = str(server.make_url("/cat.png"))
    parts = [
        {"type": "text", "text": "And this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    done = await translator.complete(ask(parts), "local")
    assert done.response.choices[0].message.content == f"And this? [1 image: png {len(PNG)} bytes]"
    assert host.hits == ["/cat.png"]


async def test_a_loopback_url_is_refused_and_nothing_is_sent(
    ollama: tuple[FakeOllama, TestServer], images: tuple[ImageHost, TestServer]
) -> None:
    fake, ollama_server = ollama
    host, image_server = images
    url = str(image_server.make_url("/cat.png"))
    parts = [
        {"type": "text", "text": "And this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    async with make_translator(str(ollama_server.make_url(""))) as translator:
        with pytest.raises(FetchRefusedError) as info:
            await translator.complete(ask(parts), "local")
        with pytest.raises(FetchRefusedError):
            await collect(translator, ask(parts, stream=True))
    assert info.value.status == 400
    assert info.value.param == "messages[0].content[1].image_url.url"
    assert host.hits == []
    assert fake.requests == []


async def test_tool_calls_come_back(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    fake.scripts.append(Script(tool_calls=[CALL]))
    done = await translator.complete(ask("Weather in Paris?", tools=[WEATHER_TOOL]), "local")
    choice = done.response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert isinstance(calls, list)
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert calls[0].id.startswith("call_")
    assert fake.requests[0]["tools"] == [WEATHER_TOOL]


async def test_tool_calls_stream_back(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    fake.scripts.append(Script(tool_calls=[CALL, CALL]))
    chunks = await collect(translator, ask("Weather?", tools=[WEATHER_TOOL], stream=True))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1]
    assert all(isinstance(d.id, str) and d.id.startswith("call_") for d in deltas)
    assert deltas[0].id != deltas[1].id
    assert json.loads(deltas[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr, arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_results_go_to_ollama(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    ]
    body = {"model": "llava", "messages": messages, "tools": [WEATHER_TOOL]}
    await translator.complete(json.dumps(body).encode(), "local")
    sent = fake.requests[0]["messages"]
    assert sent[1]["tool_calls"] == [{"id": "call_1", **CALL}]
    assert sent[2] == {
        "role": "tool",
        "content": "18C and sunny",
        "tool_name": "get_weather",
        "tool_call_id": "call_1",
    }


async def test_malformed_arguments_are_a_400_before_any_request(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{city: Paris"}}
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "18C"},
    ]
    with pytest.raises(InvalidRequestError) as info:
        await translator.complete(
            json.dumps({"model": "llava", "messages": messages}).encode(), "local"
        )
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"
    assert fake.requests == []


async def test_options_reach_ollama(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    body = ask(
        "Hi",
        max_completion_tokens=64,
        temperature=0.3,
        top_p=0.8,
        seed=42,
        stop="END",
        presence_penalty=0.1,
        frequency_penalty=0.2,
        stream=True,
    )
    await collect(translator, body)
    assert fake.requests[0]["stream"] is True
    assert fake.requests[0]["options"] == {
        "num_predict": 64,
        "temperature": 0.3,
        "top_p": 0.8,
        "seed": 42,
        "stop": ["END"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
    }


async def test_length_truncation(translator: Translator) -> None:
    done = await translator.complete(ask("one two three four five", max_tokens=2), "local")
    assert done.response.choices[0].message.content == "one two"
    assert done.response.choices[0].finish_reason == "length"
    chunks = await collect(translator, ask("one two three four five", max_tokens=3, stream=True))
    assert content_of(chunks) == "one two three"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_a_json_schema_format(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fake.scripts.append(Script(content='{"city": "Paris"}'))
    response_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    done = await translator.complete(ask("Where?", response_format=response_format), "local")
    assert json.loads(done.response.choices[0].message.content or "") == {"city": "Paris"}
    assert fake.requests[0]["format"] == schema


async def test_a_stream(translator: Translator) -> None:
    body = ask("The quick brown fox", stream=True, stream_options={"include_usage": True})
    chunks = await collect(translator, body)
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    roles = [c.choices[0].delta.role for c in chunks if c.choices]
    assert roles[0] == "assistant"
    assert all(r is None for r in roles[1:])
    assert content_of(chunks) == "The quick brown fox"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "stop"
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (4, 4)  # type: ignore[union-attr]
    plain = await collect(translator, ask("The quick brown fox", stream=True))
    assert all(c.choices for c in plain)
    assert plain[-1].choices[0].finish_reason == "stop"


async def test_a_stream_is_translated_as_it_comes(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    gate = asyncio.Event()
    fake.scripts.append(Script("first second third", gate=gate))
    stream = await translator.stream(ask("Go", stream=True), "local")
    chunks = aiter(stream)
    # Ollama holds the rest back until the first chunk has reached the client.
    first = await asyncio.wait_for(anext(chunks), timeout=10)
    assert first.choices[0].delta.content == "first"
    gate.set()
    rest = [c async for c in chunks]
    assert content_of([first, *rest]) == "first second third"


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        (Script("a b c d e", cut_after=2), MalformedUpstreamError, "cut off"),
        (Script("a b c d e", error_after=2), UpstreamError, "an error was encountered"),
        (Script("a b c d e", end_after=2), MalformedUpstreamError, "ended before it was done"),
    ],
)
async def test_a_broken_stream_ends_with_an_error(
    translator: Translator,
    ollama: tuple[FakeOllama, TestServer],
    script: Script,
    error: type[Exception],
    message: str,
) -> None:
    fake, _ = ollama
    fake.scripts.append(script)
    received: list[ChatChunk] = []

    async def read() -> None:
        async for chunk in await translator.stream(ask("Go", stream=True), "local"):
            received.append(chunk)

    with pytest.raises(error, match=message):
        await read()
    assert content_of(received) == "a b"
    assert all(c.choices[0].finish_reason is None for c in received)


async def test_a_missing_model_stays_a_404(translator: Translator) -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await translator.complete(ask("Hi", model="llama9"), "local")
    assert info.value.status == 404
    assert 'model "llama9" not found, try pulling it first' in info.value.message
    assert info.value.to_openai()["error"]["type"] == "not_found_error"
    with pytest.raises(UpstreamStatusError) as streamed:
        await collect(translator, ask("Hi", model="llama9", stream=True))
    assert streamed.value.status == 404


async def test_a_refused_connection_is_a_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_translator(f"http://127.0.0.1:{port}") as translator:
        with pytest.raises(UpstreamUnavailableError) as info:
            await translator.complete(ask("Hi"), "local")
        with pytest.raises(UpstreamUnavailableError):
            await collect(translator, ask("Hi", stream=True))
    assert info.value.status == 502


async def test_a_session_is_continued_over_two_calls(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    first = await collect(translator, ask("My name is Ada", session_id="s-1", stream=True))
    assert {c.session_id for c in first} == {"s-1"}
    done = await translator.complete(ask("What is my name?", session_id="s-1"), "local")
    assert done.response.session_id == "s-1"
    assert fake.requests[1]["messages"] == [
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": "My name is Ada"},
        {"role": "user", "content": "What is my name?"},
    ]
    assert all("session_id" not in body for body in fake.requests)


async def test_a_turn_without_retention_is_not_kept(
    translator: Translator, ollama: tuple[FakeOllama, TestServer]
) -> None:
    fake, _ = ollama
    private = {"metadata": {"session_id": "s-2", "allow_retention": False}}
    await translator.complete(ask("My secret is 42", vlmrun=private), "local")
    await translator.complete(ask("What is my secret?", session_id="s-2"), "local")
    assert fake.requests[1]["messages"] == [{"role": "user", "content": "What is my secret?"}]
