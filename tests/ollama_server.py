"""Loopback test servers: a fake Ollama speaking its native ``/api/chat``, and an image host.

:class:`FakeOllama` checks requests the way Ollama does (unknown model: 404;
images must be valid base64; tool-call arguments must be JSON objects) and
answers like it: ``stream`` defaults to true, a stream is NDJSON with one line
per token and a closing ``"done": true`` line carrying ``done_reason`` and the
token counts. Unless a :class:`Script` is queued, the "model" answers with the
last user text and what images it got (``[1 image: png 67 bytes]``), and
``options.num_predict`` cuts the answer (``done_reason: "length"``). A
``format`` schema is answered with a JSON value that fits it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.schema_sample import sample

__all__ = ["PNG", "FakeOllama", "ImageHost", "Script"]


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png()
"""A valid 1x1 PNG."""


@dataclass
class Script:
    """One scripted answer; the stream knobs say how it goes wrong."""

    content: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    done_reason: str = "stop"
    cut_after: int | None = None
    """Drop the connection after this many lines (a stream cut mid-way)."""
    error_after: int | None = None
    """Send ``{"error": ...}`` after this many lines, as Ollama does when a runner fails."""
    end_after: int | None = None
    """End the response cleanly after this many lines, without the ``done`` line."""
    gate: asyncio.Event | None = None
    """Wait for this event after the first line."""


@dataclass
class FakeOllama:
    """A fake Ollama server; ``requests`` holds every ``/api/chat`` body it got."""

    models: set[str] = field(default_factory=lambda: {"llava", "qwen3"})
    requests: list[dict[str, Any]] = field(default_factory=list)
    scripts: list[Script] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/chat", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return _error(400, f"invalid character: {exc}")
        self.requests.append(body)
        model = body.get("model")
        if not model:
            return _error(400, "model is required")
        if model not in self.models:
            return _error(404, f'model "{model}" not found, try pulling it first')
        problem = _check_messages(body.get("messages") or [])
        if problem:
            return _error(400, problem)
        fmt = body.get("format")
        if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
            return _error(400, f"invalid format: {json.dumps(fmt)}")
        if self.scripts:
            script = self.scripts.pop(0)
        elif isinstance(fmt, dict):  # held to the schema, as Ollama's grammar does
            script = Script(json.dumps(sample(fmt)))
        else:
            script = Script(_echo(body["messages"]))
        tokens = _tokens(script.content)
        done_reason = script.done_reason
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, done_reason = tokens[:limit], "length"
        prompt_count = sum(len(_tokens(m.get("content") or "")) for m in body["messages"])
        final = {
            "model": model,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "done": True,
            "done_reason": done_reason,
            "total_duration": 1000,
            "load_duration": 10,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": 100,
            "eval_count": len(tokens) + len(script.tool_calls or ()),
            "eval_duration": 500,
        }
        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
            if script.tool_calls:
                message["tool_calls"] = script.tool_calls
            return web.json_response({**final, "message": message})
        return await self._stream(request, model, tokens, script, final)

    async def _stream(
        self,
        request: web.Request,
        model: str,
        tokens: list[str],
        script: Script,
        final: dict[str, Any],
    ) -> web.StreamResponse:
        lines: list[dict[str, Any]] = [
            _line(model, {"role": "assistant", "content": t}) for t in tokens
        ]
        if script.tool_calls:
            message = {"role": "assistant", "content": "", "tool_calls": script.tool_calls}
            lines.append(_line(model, message))
        lines.append({**final, "message": {"role": "assistant", "content": ""}})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for n, line in enumerate(lines):
            if n == script.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if n == script.error_after:
                await response.write(
                    b'{"error":"an error was encountered while running the model"}\n'
                )
                break
            if n == script.end_after:
                break
            await response.write(json.dumps(line).encode() + b"\n")
            if n == 0 and script.gate is not None:
                await script.gate.wait()
        await response.write_eof()
        return response


def _line(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "message": message,
        "done": False,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _tokens(text: str) -> list[str]:
    """Words as tokens, each but the first with its leading space."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])] if text else []


def _check_messages(messages: list[dict[str, Any]]) -> str | None:
    for message in messages:
        for image in message.get("images") or ():
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                return "illegal base64 data at input byte 0"
        for call in message.get("tool_calls") or ():
            if not isinstance(call.get("function", {}).get("arguments"), dict):
                return (
                    "json: cannot unmarshal string into Go struct field "
                    "ToolCallFunction.messages.tool_calls.function.arguments of type "
                    "api.ToolCallFunctionArguments"
                )
    return None


def _kind(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    return "unknown"


def _echo(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            text = message.get("content") or ""
            images = [base64.b64decode(i) for i in message.get("images") or ()]
            if images:
                seen = ", ".join(f"{_kind(d)} {len(d)} bytes" for d in images)
                noun = "image" if len(images) == 1 else "images"
                text = f"{text} [{len(images)} {noun}: {seen}]".strip()
            return text
    return ""


@dataclass
class ImageHost:
    """An image host: ``/cat.png``, redirects, a big file, a wrong type, a slow answer."""

    hits: list[str] = field(default_factory=list)
    redirect_to: str = "/cat.png"
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set it to let ``/slow.png`` answer."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cat.png", self.cat)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop", self.loop)
        app.router.add_get("/big.png", self.big)
        app.router.add_get("/page.html", self.page)
        app.router.add_get("/slow.png", self.slow)
        app.router.add_get("/missing.png", self.missing)
        app.middlewares.append(self._count)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    async def cat(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirect_to)

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(self, request: web.Request) -> web.StreamResponse:
        # Streamed without a Content-Length: the cap must hold while reading.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"\0" * 16384)
        await response.write_eof()
        return response

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(body=PNG, content_type="image/png")

    async def missing(self, request: web.Request) -> web.Response:
        raise web.HTTPNotFound()
