"""A file uploaded to the server reaches an openai-compatible upstream as its content."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from translator.config import parse_config
from translator.server import create_app, serving


async def test_a_file_uploaded_here_reaches_an_openai_compatible_upstream_as_its_content() -> None:
    from aiohttp import web

    seen: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        reply = {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return web.json_response(reply)

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(upstream_app, host="127.0.0.1") as upstream:
        base = str(upstream.make_url("/v1"))
        config = parse_config(f'[backends.up]\nplugin = "openai-compatible"\nbase_url = "{base}"\n')
        async with serving(create_app(config)) as root, aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("purpose", "assistants")
            form.add_field("file", b"%PDF-1.4 hi", filename="n.pdf", content_type="application/pdf")
            async with session.post(f"{root}/v1/files", data=form) as response:
                assert response.status == 200, await response.text()
                file_id = (await response.json())["id"]
            part = {"type": "file", "file": {"file_id": file_id}}
            request = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
            async with session.post(f"{root}/v1/chat/completions", json=request) as response:
                assert response.status == 200, await response.text()
    sent = seen[0]["messages"][0]["content"][0]["file"]  # type: ignore[index]
    assert sent.get("file_id") != file_id
    assert "file_data" in sent
