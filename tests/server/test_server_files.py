"""``/v1/files`` over raw HTTP: the edges the SDK never shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from translator_plugins.echo import EchoBackend

from translator import Translator
from translator._backend import caller_scope
from translator._model import ChatRequest, ChatResponse, InputFilePart, UserMessage
from translator.config import parse_config
from translator.server import create_app
from translator.stores import DiskFileStore, FileStore, MemoryFileStore

Client = TestClient[Any, Any]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = create_app(parse_config("[server.limits]\nmax_file_bytes = 16"))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def form(data: bytes = b"hello", purpose: str | None = "assistants") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename="hello.txt", content_type="text/plain")
    if purpose is not None:
        body.add_field("purpose", purpose)
    return body


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.json()
    error: dict[str, Any] = body["error"]
    return error


async def test_upload_returns_the_openai_file_object(client: Client) -> None:
    response = await client.post("/v1/openai/files", data=form())
    assert response.status == 200
    created = await response.json()
    assert created["object"] == "file"
    assert created["id"].startswith("file-")
    assert (created["bytes"], created["filename"], created["purpose"]) == (
        5,
        "hello.txt",
        "assistants",
    )
    content = await client.get(f"/v1/files/{created['id']}/content")
    assert await content.read() == b"hello"
    assert content.headers["Content-Type"] == "text/plain"
    assert content.headers["Content-Disposition"] == 'attachment; filename="hello.txt"'
    assert content.headers["X-Content-Type-Options"] == "nosniff"


async def test_upload_without_a_file_or_purpose_names_the_missing_field(client: Client) -> None:
    no_purpose = await client.post("/v1/files", data=form(purpose=None))
    assert no_purpose.status == 400
    assert (await error_of(no_purpose))["param"] == "purpose"
    only_purpose = aiohttp.FormData()
    only_purpose.add_field("purpose", "assistants")
    only_purpose.add_field("other", b"x", filename="x.bin")  # forces multipart
    no_file = await client.post("/v1/files", data=only_purpose)
    assert no_file.status == 400
    assert (await error_of(no_file))["param"] == "file"


@pytest.mark.parametrize(
    "purpose", ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
)
async def test_upload_takes_each_openai_purpose(client: Client, purpose: str) -> None:
    response = await client.post("/v1/files", data=form(purpose=purpose))
    assert response.status == 200
    assert (await response.json())["purpose"] == purpose


@pytest.mark.parametrize("purpose", ["", "Assistants", "anything", "x" * 500])
async def test_upload_with_another_purpose_is_a_400_on_purpose(
    client: Client, purpose: str
) -> None:
    response = await client.post("/v1/files", data=form(purpose=purpose))
    assert response.status == 400
    error = await error_of(response)
    assert error["param"] == "purpose"
    assert (await (await client.get("/v1/files")).json())["data"] == []


async def test_upload_that_is_not_multipart_is_refused(client: Client) -> None:
    response = await client.post("/v1/files", json={"file": "hello", "purpose": "assistants"})
    assert response.status == 415
    assert "multipart/form-data" in (await error_of(response))["message"]


async def test_upload_over_the_limit_is_a_413_and_nothing_is_kept(client: Client) -> None:
    response = await client.post("/v1/files", data=form(b"x" * 17))
    assert response.status == 413
    assert (await error_of(response))["param"] == "file"
    listed = await (await client.get("/v1/files")).json()
    assert listed["data"] == []


async def test_unknown_ids_are_openai_404s(client: Client) -> None:
    for method, path in [
        ("GET", "/v1/files/file-000000000000000000000000"),
        ("DELETE", "/v1/files/file-000000000000000000000000"),
        ("GET", "/v1/files/../../etc/passwd/content"),
        ("GET", "/v1/files/not-an-id/content"),
    ]:
        response = await client.request(method, path)
        assert response.status == 404, path
        assert (await error_of(response))["type"] in ("not_found_error", "invalid_request_error")


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=ten", "order=sideways"])
async def test_bad_list_parameters_are_400s(client: Client, query: str) -> None:
    response = await client.get(f"/v1/files?{query}")
    assert response.status == 400
    assert (await error_of(response))["param"] == query.split("=")[0]


async def test_unicode_filenames_are_kept_and_served_safely(client: Client) -> None:
    body = aiohttp.FormData(quote_fields=False)  # raw UTF-8 names, as the OpenAI SDK sends
    body.add_field("file", b"x", filename="r\u00e9sum\u00e9 1.txt")
    body.add_field("purpose", "user_data")
    created = await (await client.post("/v1/files", data=body)).json()
    assert created["filename"] == "r\u00e9sum\u00e9 1.txt"
    content = await client.get(f"/v1/files/{created['id']}/content")
    assert content.headers["Content-Disposition"].startswith(
        "attachment; filename*=UTF-8''r%C3%A9sum"
    )


async def test_files_survive_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    config = parse_config(f'[server]\ndata_dir = "{tmp_path}"')
    async with TestClient(TestServer(create_app(config))) as first:
        created = await (await first.post("/v1/files", data=form())).json()
    async with TestClient(TestServer(create_app(config))) as second:
        content = await second.get(f"/v1/files/{created['id']}/content")
        assert await content.read() == b"hello"


async def test_a_translator_built_elsewhere_is_given_the_file_store(tmp_path: Path) -> None:
    translator = Translator({"echo": EchoBackend()})
    store = DiskFileStore(tmp_path)
    app = create_app(translator=translator, files=store)
    assert translator.context.files is store
    async with TestClient(TestServer(app)) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert (await reply.json())["choices"][0]["message"]["content"] == "hi"
    await translator.aclose()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=xx", b"--xx\r\nnot a header line\r\n\r\nx\r\n--xx--\r\n"),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="file"; filename="'
            + b"a" * 20000
            + b'"\r\n\r\nx\r\n--xx--\r\n',
        ),
    ],
    ids=["no-boundary", "bad-part-header", "long-part-header"],
)
async def test_a_malformed_upload_is_a_400(client: Client, content_type: str, body: bytes) -> None:
    response = await client.post("/v1/files", data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    error = await error_of(response)
    assert error["type"] == "invalid_request_error"
    assert "multipart" in error["message"]
    assert (await (await client.get("/v1/files")).json())["data"] == []


async def test_an_upload_announcing_more_than_the_limit_is_refused_before_it_is_read(
    client: Client,
) -> None:
    body = b"--xx\r\n" + b"x" * (100 * 1024)
    headers = {"Content-Type": "multipart/form-data; boundary=xx"}
    response = await client.post("/v1/files", data=body, headers=headers)
    assert response.status == 413
    assert (await error_of(response))["param"] == "file"


async def test_an_upload_past_the_stores_room_is_refused_while_it_is_read() -> None:
    store = MemoryFileStore(max_bytes=8)
    app = create_app(parse_config("[server.limits]\nmax_file_bytes = 1000"), files=store)
    async with TestClient(TestServer(app)) as client:

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to judge by
            yield b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
            yield b"y" * 500
            yield b"\r\n--xx--\r\n"

        headers = {"Content-Type": "multipart/form-data; boundary=xx"}
        response = await client.post("/v1/files", data=chunked(), headers=headers)
        assert response.status == 413
        assert (await error_of(response))["code"] == "file_store_full"
        assert store.used == 0


class FileReader(EchoBackend):
    """Answers with the content of each ``input_file`` it is sent, as the store gives it."""

    def __init__(self, files: FileStore) -> None:
        super().__init__()
        self.files = files

    async def complete(self, request: ChatRequest) -> ChatResponse:
        response = self.answer(request)
        ids = [
            part.file_id
            for message in request.messages
            if isinstance(message, UserMessage) and not isinstance(message.content, str)
            for part in message.content
            if isinstance(part, InputFilePart)
        ]
        scope = caller_scope(request)  # the caller's files only, as a backend must
        found = [await self.files.read(file_id, scope=scope) for file_id in ids]
        response.choices[0].message.content = " ".join(
            "missing" if f is None else f[2].decode() for f in found
        )
        return response


@pytest.mark.parametrize("disk", [False, True], ids=["memory", "disk"])
async def test_with_keys_each_caller_sees_only_its_own_files(tmp_path: Path, disk: bool) -> None:
    store: FileStore = DiskFileStore(tmp_path) if disk else MemoryFileStore()
    translator = Translator({"echo": FileReader(store)})
    config = parse_config('[server]\napi_keys = ["k1", "k2"]')
    app = create_app(config, translator=translator, files=store)
    one = {"Authorization": "Bearer k1"}
    two = {"Authorization": "Bearer k2"}
    async with TestClient(TestServer(app)) as client:
        mine = await (await client.post("/v1/files", data=form(b"one's"), headers=one)).json()
        theirs = await (await client.post("/v1/files", data=form(b"two's"), headers=two)).json()
        listed = await (await client.get("/v1/files", headers=one)).json()
        assert [f["id"] for f in listed["data"]] == [mine["id"]]
        assert "owner" not in listed["data"][0]
        for method, path in [
            ("GET", f"/v1/files/{theirs['id']}"),
            ("GET", f"/v1/files/{theirs['id']}/content"),
            ("DELETE", f"/v1/files/{theirs['id']}"),
        ]:
            response = await client.request(method, path, headers=one)
            assert response.status == 404, (method, path)
        content = await client.get(f"/v1/files/{theirs['id']}/content", headers=two)
        assert await content.read() == b"two's"

        parts = [{"type": "input_file", "file_id": f["id"]} for f in (mine, theirs)]
        chat = {"model": "echo", "messages": [{"role": "user", "content": parts}]}
        reply = await (await client.post("/v1/chat/completions", json=chat, headers=one)).json()
        assert reply["choices"][0]["message"]["content"] == "one's missing"
    await translator.aclose()
