"""openai-compatible: a file uploaded to the translator reaches the upstream as its content.

The upstream has never seen the translator's file ids, so a ``file`` part naming
one is sent with ``file_data`` (a data URI) and ``filename`` instead; an id the
translator's store does not know is the upstream's own and passes unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from translator_plugins.openai_compat import MATRIX, OpenAICompatBackend

from tests.plugins.openai_compat.test_openai_compat import STREAM, Upstream, running_upstream
from translator._backend import BackendContext
from translator._compat import supported
from translator._core import Translator
from translator._http import HttpPolicy
from translator._openai import decode_request
from translator.errors import NeedsIOError, UnsupportedFieldError
from translator.stores._files import MemoryFileStore, new_file_id

PDF = b"%PDF-1.4 hello"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


@pytest.fixture
def store() -> MemoryFileStore:
    return MemoryFileStore()


def translator(upstream: Upstream, store: MemoryFileStore, *rows: str) -> Translator:
    context = BackendContext(files=store)
    backend = OpenAICompatBackend(
        "up",
        base_url=upstream.base_url,
        http=context.http.bind("up", HttpPolicy(retries=0)),
        matrix=MATRIX.with_overrides(supported(f, "set by the test") for f in rows),
        files=store,
    )
    return Translator({"up": backend}, context=context)


def body(*parts: dict[str, Any], **fields: Any) -> bytes:
    content = [{"type": "text", "text": "Read this"}, *parts]
    request = {"model": "m", "messages": [{"role": "user", "content": content}], **fields}
    return json.dumps(request).encode()


def file_part(file_id: str, **extra: str) -> dict[str, Any]:
    return {"type": "file", "file": {"file_id": file_id, **extra}}


def sent_parts(upstream: Upstream, call: int = 0) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = upstream.bodies[call]["messages"][-1]["content"]
    return parts


DATA_URI = "data:application/pdf;base64," + base64.b64encode(PDF).decode()


async def test_a_file_uploaded_here_is_sent_inline(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("notes.pdf", "application/pdf", PDF, "assistants", scope=None)
    t = translator(upstream, store)
    done = await t.complete(body(file_part(uploaded.id)), "up")
    await t.aclose()
    assert done.response.choices[0].message.content == "Hi there"
    assert sent_parts(upstream)[1] == {
        "type": "file",
        "file": {"file_data": DATA_URI, "filename": "notes.pdf"},
    }


async def test_a_filename_the_client_gave_is_kept(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("notes.pdf", "application/pdf", PDF, "assistants", scope=None)
    t = translator(upstream, store)
    await t.complete(body(file_part(uploaded.id, filename="q3.pdf")), "up")
    await t.aclose()
    assert sent_parts(upstream)[1]["file"] == {"file_data": DATA_URI, "filename": "q3.pdf"}


async def test_an_id_the_store_does_not_know_is_the_upstreams_own(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    theirs = file_part("file-6F2ksmvXxt4VdoqmHRw6kL")
    ours_but_gone = file_part(new_file_id())
    t = translator(upstream, store)
    await t.complete(body(theirs, ours_but_gone), "up")
    await t.aclose()
    assert sent_parts(upstream)[1:] == [theirs, ours_but_gone]


async def test_streaming_sends_the_file_inline_too(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("notes.pdf", "application/pdf", PDF, "assistants", scope=None)
    upstream.then(upstream.sse(STREAM))
    t = translator(upstream, store)
    stream = await t.stream(body(file_part(uploaded.id), stream=True), "up")
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await t.aclose()
    assert text == "Hello"
    assert sent_parts(upstream)[1]["file"]["file_data"] == DATA_URI


async def test_a_session_keeps_the_id_not_the_content(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("notes.pdf", "application/pdf", PDF, "assistants", scope=None)
    t = translator(upstream, store)
    await t.complete(body(file_part(uploaded.id), session_id="s"), "up")
    assert t.sessions is not None
    [stored, _answer] = await t.sessions.load("s")
    assert stored.content[1].file.file_id == uploaded.id  # type: ignore[union-attr, index]
    # The next turn sends the earlier file inline again, read from the store.
    follow = {"model": "m", "session_id": "s", "messages": [{"role": "user", "content": "And?"}]}
    await t.complete(json.dumps(follow).encode(), "up")
    await t.aclose()
    earlier = upstream.bodies[1]["messages"][0]["content"][1]
    assert earlier["file"] == {"file_data": DATA_URI, "filename": "notes.pdf"}


async def test_an_input_file_part_the_matrix_lets_through_becomes_a_file_part(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("clip.mp4", "video/mp4", b"\x00\x00mp4", "assistants", scope=None)
    theirs = {"type": "input_file", "file_id": "file-abc"}
    t = translator(upstream, store, "content.input_file")
    await t.complete(body({"type": "input_file", "file_id": uploaded.id}, theirs), "up")
    await t.aclose()
    data = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00mp4").decode()
    assert sent_parts(upstream)[1:] == [
        {"type": "file", "file": {"file_data": data, "filename": "clip.mp4"}},
        theirs,
    ]


async def test_input_file_is_still_refused_by_default(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("a.pdf", "application/pdf", PDF, "assistants", scope=None)
    t = translator(upstream, store)
    with pytest.raises(UnsupportedFieldError, match="input_file") as caught:
        await t.complete(body({"type": "input_file", "file_id": uploaded.id}), "up")
    await t.aclose()
    assert caught.value.param == "messages[0].content[1]"
    assert upstream.bodies == []


async def test_pure_translation_says_a_file_of_ours_needs_io(
    upstream: Upstream, store: MemoryFileStore
) -> None:
    uploaded = await store.put("a.pdf", "application/pdf", PDF, "assistants", scope=None)
    t = translator(upstream, store)
    backend = t.backend("up")
    with pytest.raises(NeedsIOError) as caught:
        backend.encode_request(decode_request(body(file_part(uploaded.id))))
    assert caught.value.param == "messages[0].content[1].file.file_id"
    # The upstream's own id, and inline data, need nothing.
    native = json.loads(backend.encode_request(decode_request(body(file_part("file-abc")))))
    assert native["messages"][0]["content"][1] == file_part("file-abc")
    await t.aclose()


async def test_without_a_file_store_ids_pass_through(upstream: Upstream) -> None:
    context = BackendContext()
    backend = OpenAICompatBackend("up", base_url=upstream.base_url, http=context.http.bind("up"))
    t = Translator({"up": backend}, context=context)
    part = file_part(new_file_id())
    await t.complete(body(part), "up")
    assert json.loads(backend.encode_request(decode_request(body(part))))
    await t.aclose()
    assert sent_parts(upstream)[1] == part
