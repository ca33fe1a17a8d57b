"""``/v1/files`` over raw HTTP: the edges the SDK never shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from plugins.echo import EchoBackend
from translator import Translator
from translator.config import parse_config
from translator.server import create_app
from translator.stores import DiskFileStore

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
