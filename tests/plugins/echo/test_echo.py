"""The echo backend: offline, deterministic, honest about usage, streaming word by word."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from translator_plugins.echo import MATRIX, EchoBackend, EchoFactory

from translator._backend import BackendContext, BackendSettings
from translator._compat import REQUEST_FIELDS, Mode, Treatment
from translator._core import Translator
from translator._model import ChatChunk
from translator._openai import decode_request
from translator._tokens import estimate_tokens
from translator.errors import UnsupportedFieldError
from translator.testing import PART_TYPES, ROLES

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}}
FILE = {"type": "input_file", "file_id": "file-1"}


def body(content: Any, **fields: Any) -> bytes:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": content},
    ]
    return json.dumps({"model": "m", "messages": messages, **fields}).encode()


@pytest.fixture
async def translator() -> AsyncIterator[Translator]:
    t = Translator(sessions=False)
    yield t
    await t.aclose()


async def test_echo_is_the_default_backend(translator: Translator) -> None:
    assert list(translator.backends) == ["echo"]
    done = await translator.complete(body("Hello there"), "echo")
    assert done.response.choices[0].message.content == "Hello there"
    assert done.response.model == "m"


async def test_it_says_what_else_it_received(translator: Translator) -> None:
    parts = [{"type": "text", "text": "Look"}, IMAGE, IMAGE, FILE]
    done = await translator.complete(body(parts), "echo")
    assert done.response.choices[0].message.content == "Look\nReceived: 2 images, 1 file."


async def test_only_media(translator: Translator) -> None:
    done = await translator.complete(body([IMAGE]), "echo")
    assert done.response.choices[0].message.content == "Received: 1 image."


async def test_usage_is_an_honest_estimate(translator: Translator) -> None:
    done = await translator.complete(body("Hello there"), "echo")
    usage = done.response.usage
    prompt = sum(estimate_tokens(t) for t in ("Be brief.", "earlier", "ok", "Hello there"))
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        prompt,
        estimate_tokens("Hello there"),
    )
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.estimated is True


async def test_it_is_deterministic(translator: Translator) -> None:
    a = await translator.complete(body("same"), "echo")
    b = await translator.complete(body("same"), "echo")
    assert a.response.choices == b.response.choices
    assert a.response.usage == b.response.usage


async def test_it_streams_word_by_word(translator: Translator) -> None:
    stream = await translator.stream(
        body("one two three", stream=True, stream_options={"include_usage": True}), "echo"
    )
    chunks: list[ChatChunk] = [c async for c in stream]
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["one ", "two ", "three"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1


async def test_no_usage_chunk_unless_asked(translator: Translator) -> None:
    stream = await translator.stream(body("hi", stream=True), "echo")
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)


def test_its_matrix_names_everything() -> None:
    names = MATRIX.fields()
    assert set(REQUEST_FIELDS) <= names
    assert {f"role.{r}" for r in ROLES} <= names
    assert {f"content.{t}" for t in PART_TYPES} <= names
    assert MATRIX.unknown is Treatment.IGNORED


async def test_unknown_fields_are_dropped_and_reported(translator: Translator) -> None:
    done = await translator.complete(body("hi", top_k=3), "echo")
    assert done.report.dropped == ["top_k"]
    assert b"top_k" not in translator.translate_request(body("hi", top_k=3), "echo")


def test_pure_translation_round_trip(translator: Translator) -> None:
    native = translator.translate_request(body("hi", temperature=0.5), "echo")
    assert decode_request(native).temperature == 0.5
    reply = msgspec.json.encode(EchoBackend().answer(decode_request(body("hi"))))
    out = json.loads(translator.translate_response(reply, "echo", model="m"))
    assert out["choices"][0]["message"]["content"] == "hi"


def test_factory_options_overrides_and_mode() -> None:
    settings = msgspec.convert(
        {
            "plugin": "echo",
            "options": {"delay": 0.5},
            "matrix": {"n": "rejected"},
            "mode": "strict",
        },
        BackendSettings,
    )
    backend = EchoFactory().create("parrot", settings, BackendContext())
    assert isinstance(backend, EchoBackend)
    assert (backend.name, backend.delay, backend.matrix.backend) == ("parrot", 0.5, "parrot")
    request = decode_request(body("hi", n=2))
    with pytest.raises(UnsupportedFieldError) as caught:
        backend.matrix.apply(request)
    assert caught.value.param == "n"
    lenient = EchoFactory().create(
        "e",
        BackendSettings(plugin="echo", matrix={"n": Treatment.REJECTED}, mode=Mode.LENIENT),
        BackendContext(),
    )
    assert lenient.matrix.apply(decode_request(body("hi", n=2))).dropped == ["n"]
