"""The Translator's pure and async paths, driven through the mock backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from translator import hookimpl
from translator._backend import Backend
from translator._compat import Mode, Treatment, emulated, ignored, rejected, supported
from translator._core import Translator
from translator._model import ChatChunk, ChatRequest, ChatResponse, ImagePart, UserMessage
from translator._openai import decode_request
from translator._plugins import get_plugin_manager
from translator._streaming import ChunkStream
from translator.errors import (
    InvalidRequestError,
    NeedsIOError,
    NotFoundError,
    UnsupportedFieldError,
    UpstreamTimeoutError,
)
from translator.testing import MockBackend, supports_everything


def body(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}], **fields}
    ).encode()


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture
async def mock() -> MockBackend:
    return MockBackend()


@pytest.fixture
async def translator(mock: MockBackend) -> AsyncIterator[Translator]:
    t = Translator({"mock": mock}, sessions=False)
    yield t
    await t.aclose()


# -- pure translation ------------------------------------------------------------


def test_translate_request_applies_the_matrix_and_encodes() -> None:
    picky = MockBackend(matrix=[ignored("temperature", "no sampling"), supported("messages", "x")])
    t = Translator({"p": picky}, sessions=False)
    native = json.loads(t.translate_request(body(temperature=1.0, top_k=2), "p"))
    assert "temperature" not in native
    assert native["top_k"] == 2
    assert picky.calls == []


def test_translate_request_refuses_what_the_matrix_rejects() -> None:
    t = Translator({"p": MockBackend(matrix=[rejected("n", "one answer")])}, sessions=False)
    with pytest.raises(UnsupportedFieldError) as caught:
        t.translate_request(body(n=2), "p")
    assert (caught.value.status, caught.value.param) == (400, "n")
    lenient = json.loads(t.translate_request(body(n=2), "p", mode=Mode.LENIENT))
    assert "n" not in lenient


def test_translate_request_reports_bad_input_as_a_400(translator: Translator) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translator.translate_request(b'{"model": "m", "messages": [{"role": "nobody"}]}', "mock")
    assert caught.value.status == 400
    assert caught.value.param is not None


class InlinesImages(MockBackend):
    """A backend that wants images inline, so remote ones need fetching first."""

    def encode_request(self, request: ChatRequest) -> bytes:
        for message in request.messages:
            for part in getattr(message, "content", None) or ():
                if isinstance(part, ImagePart) and not part.image_url.url.startswith("data:"):
                    raise NeedsIOError(
                        "This request has a remote image the backend needs inline; "
                        "fetching it is I/O.",
                        param="messages[0].content[0].image_url.url",
                    )
        return super().encode_request(request)


def test_translate_request_says_when_io_is_needed() -> None:
    t = Translator({"inline": InlinesImages()}, sessions=False)
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
    with pytest.raises(NeedsIOError) as caught:
        t.translate_request(body(messages=[{"role": "user", "content": [image]}]), "inline")
    assert caught.value.status == 400
    assert caught.value.to_openai()["error"]["code"] == "requires_io"
    inline = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert t.translate_request(body(messages=[{"role": "user", "content": [inline]}]), "inline")


def test_translate_response_gives_a_chat_completion(mock: MockBackend) -> None:
    t = Translator({"mock": mock}, sessions=False)
    native = msgspec.json.encode(mock.response(decode_request(body()), "Hello"))
    out = json.loads(t.translate_response(native, "mock", model="gpt-x"))
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["content"] == "Hello"


def test_an_unknown_backend_is_a_404(translator: Translator) -> None:
    with pytest.raises(NotFoundError) as caught:
        translator.translate_request(body(), "nope")
    assert caught.value.status == 404
    assert caught.value.code == "backend_not_found"


def test_prepare_names_an_unknown_backend_as_a_404(translator: Translator) -> None:
    with pytest.raises(NotFoundError) as caught:
        translator.prepare(body(), "nope")
    assert caught.value.code == "backend_not_found"


def test_translate_request_takes_a_decoded_request_or_any_bytes_like_body() -> None:
    t = Translator({"mock": MockBackend()}, sessions=False)
    expected = t.translate_request(body(seed=3), "mock")
    assert t.translate_request(decode_request(body(seed=3)), "mock") == expected  # type: ignore[arg-type]
    assert t.translate_request(bytearray(body(seed=3)), "mock") == expected  # type: ignore[arg-type]
    assert t.translate_request(memoryview(body(seed=3)), "mock") == expected  # type: ignore[arg-type]
    request, report, backend = t.prepare(bytearray(body(seed=3)), "mock")  # type: ignore[arg-type]
    assert (request.seed, report.actions, backend) == (3, [], t.backend("mock"))


class _Shouter:
    @hookimpl
    def adjust_request(self, request: ChatRequest, backend: str) -> None:
        request.messages.append(UserMessage(content=f"(for {backend})"))


def test_translate_request_lets_plugins_adjust_the_request_first() -> None:
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[_Shouter()])
    t = Translator({"mock": MockBackend()}, plugin_manager=pm, sessions=False)
    native = json.loads(t.translate_request(body(), "mock"))
    assert native["messages"][-1] == {"role": "user", "content": "(for mock)"}
    picky = MockBackend(matrix=[rejected("role.user", "no users here")])
    t.add_backend("picky", picky)
    with pytest.raises(UnsupportedFieldError) as caught:
        t.translate_request(body(messages=[{"role": "system", "content": "Hi"}]), "picky")
    assert caught.value.param == "messages[1]"


# -- complete --------------------------------------------------------------------


async def test_complete_records_the_request_as_the_backend_got_it(
    translator: Translator, mock: MockBackend
) -> None:
    mock.matrix = mock.matrix.with_overrides([ignored("seed", "not reproducible")])
    mock.reply("Scripted")
    done = await translator.complete(body(seed=1), "mock")
    assert done.response.choices[0].message.content == "Scripted"
    assert done.report.dropped == ["seed"]
    assert mock.last_request.seed is msgspec.UNSET
    assert [c.kind for c in mock.calls] == ["complete"]


async def test_complete_takes_a_decoded_request(translator: Translator, mock: MockBackend) -> None:
    request = decode_request(body())
    await translator.complete(request, "mock")
    assert mock.last_request is request


async def test_scripted_replies_in_order_then_the_default(
    translator: Translator, mock: MockBackend
) -> None:
    response = mock.response(decode_request(body()), "whole")
    mock.reply("first", response, UpstreamTimeoutError("slow", backend="mock"))
    assert (await translator.complete(body(), "mock")).response.choices[
        0
    ].message.content == "first"
    assert (await translator.complete(body(), "mock")).response is response
    with pytest.raises(UpstreamTimeoutError) as caught:
        await translator.complete(body(), "mock")
    assert caught.value.status == 504
    assert (await translator.complete(body(), "mock")).response.choices[0].message.content == "ok"


async def test_strict_rejection_never_reaches_the_backend(
    translator: Translator, mock: MockBackend
) -> None:
    mock.matrix = mock.matrix.with_overrides([rejected("n", "one answer", when=None)])
    with pytest.raises(UnsupportedFieldError):
        await translator.complete(body(n=2), "mock")
    assert mock.calls == []


@pytest.mark.parametrize(
    ("fields", "echoed"),
    [
        ({"session_id": None, "vlmrun": {"metadata": {"session_id": "s-meta"}}}, "s-meta"),
        ({"vlmrun": {"metadata": {"session_id": "s-meta"}}}, "s-meta"),
        ({"session_id": None}, None),
        ({"vlmrun": {}}, None),
    ],
)
async def test_the_session_id_is_read_from_either_place(
    translator: Translator, fields: dict[str, Any], echoed: object
) -> None:
    done = await translator.complete(body(**fields), "mock")
    assert done.response.session_id == echoed


async def test_the_session_id_is_echoed(translator: Translator, mock: MockBackend) -> None:
    done = await translator.complete(body(session_id="s-9"), "mock")
    assert done.response.session_id == "s-9"
    stream = await translator.stream(body(session_id="s-9", stream=True), "mock")
    assert {c.session_id async for c in stream} == {"s-9"}


# -- stream --------------------------------------------------------------------


async def test_a_native_stream(translator: Translator, mock: MockBackend) -> None:
    mock.reply_stream(["Hel", "lo"])
    stream = await translator.stream(
        body(stream=True, stream_options={"include_usage": True}), "mock"
    )
    assert stream.include_usage
    chunks = [c async for c in stream]
    assert text_of(chunks) == "Hello"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert [c.kind for c in mock.calls] == ["stream"]


async def test_a_stream_error_after_some_chunks(translator: Translator, mock: MockBackend) -> None:
    mock.reply_stream(["partial"], error=UpstreamTimeoutError("stalled"))
    stream = await translator.stream(body(stream=True), "mock")
    got: list[ChatChunk] = []

    async def drain() -> None:
        async for c in stream:
            got.append(c)

    with pytest.raises(UpstreamTimeoutError):
        await drain()
    assert text_of(got) == "partial"


async def test_scripted_chunks_pass_unchanged(translator: Translator, mock: MockBackend) -> None:
    own = ChunkStream("gpt-x", id="chatcmpl-own")
    scripted = [own.text("a"), own.finish("length")]
    mock.reply_stream(scripted, finish=False)
    stream = await translator.stream(body(stream=True), "mock")
    assert [c async for c in stream] == scripted


async def test_an_emulated_stream_uses_complete() -> None:
    matrix = supports_everything("emu").with_overrides([emulated("stream", "whole answers")])
    mock = MockBackend("emu", matrix=matrix).reply("one two")
    t = Translator({"emu": mock}, sessions=False)
    stream = await t.stream(body(stream=True, stream_options={"include_usage": True}), "emu")
    chunks = [c async for c in stream]
    assert [c.kind for c in mock.calls] == ["complete"]
    assert [c.choices[0].delta.content for c in chunks[:2]] == ["one ", "two"]
    assert chunks[-1].choices == []
    assert stream.report.emulated == ["stream"]
    assert matrix.treatment("stream", True) is Treatment.EMULATED


async def test_a_stream_dropped_in_lenient_mode_is_streamed_by_the_translator() -> None:
    matrix = supports_everything("whole").with_overrides([rejected("stream", "no streaming")])
    mock = MockBackend("whole", matrix=matrix).reply("one two")
    t = Translator({"whole": mock}, sessions=False)
    stream = await t.stream(body(stream=True), "whole", mode=Mode.LENIENT)
    chunks = [c async for c in stream]
    assert [c.kind for c in mock.calls] == ["complete"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two"
    assert stream.report.emulated == ["stream"]
    assert stream.report.dropped == []


class Tracked(Backend):
    """Streams forever; records when its stream is closed."""

    def __init__(self) -> None:
        self.name = "tracked"
        self.matrix = supports_everything("tracked")
        self.closed_stream = False

    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise AssertionError("not used")

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        chunks = ChunkStream(request.model)
        try:
            while True:
                yield chunks.text("more ")
        finally:
            self.closed_stream = True


@pytest.mark.parametrize("session", [None, "s-1"])
async def test_closing_a_stream_closes_the_backends(session: str | None) -> None:
    backend = Tracked()
    t = Translator({"t": backend}, sessions=False)
    extra = {"session_id": session} if session else {}
    stream = await t.stream(body(stream=True, **extra), "t")
    async for _ in stream:
        break
    await stream.aclose()
    assert backend.closed_stream


async def test_aclose_closes_every_backend(mock: MockBackend) -> None:
    other = MockBackend("other")
    async with Translator({"a": mock, "b": other}, sessions=False):
        pass
    assert mock.closed
    assert other.closed


def test_the_mock_matrix_is_configurable() -> None:
    assert MockBackend(matrix=[rejected("n", "x")]).matrix.treatment("n") is Treatment.REJECTED
    assert MockBackend().matrix.treatment("anything") is Treatment.SUPPORTED
    given = supports_everything("g")
    assert MockBackend(matrix=given).matrix is given


async def test_add_backend(translator: Translator) -> None:
    translator.add_backend("second", MockBackend("second", default_text="two"))
    done = await translator.complete(body(), "second")
    assert done.response.choices[0].message.content == "two"
