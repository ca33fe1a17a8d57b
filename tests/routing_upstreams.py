"""Loopback stand-in upstreams for the routing tests, and a server in front of them.

A :class:`StandIn` speaks the OpenAI Chat Completions protocol on 127.0.0.1
(port 0) and answers ``from NAME``, whole or streamed, unless told to fail:
``fault`` is one of ``"500"``, ``"503"``, ``"429"``, ``"400"``, ``"slow"`` (answers after
``delay`` seconds) or ``"cut"`` (a stream that breaks after its first chunk).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
from aiohttp import web
from aiohttp.test_utils import TestServer
from translator_plugins import ollama, openai_compat

from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving

__all__ = ["StandIn", "closed_url", "routed_server", "stand_ins"]


class StandIn:
    """One scripted upstream (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fault: str | None = None
        self.delay = 5.0
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer(request, body)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        fault = self.fault
        if fault in ("500", "503", "429", "400"):
            error = {"message": f"{self.name} says {fault}", "type": "x", "param": None}
            headers = {"Retry-After": "0"} if fault != "400" else None
            return web.json_response({"error": error}, status=int(fault), headers=headers)
        if fault == "slow":
            await asyncio.sleep(self.delay)
        text = f"from {self.name}"
        if not body.get("stream"):
            return web.json_response(_completion(body["model"], text))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk(body["model"], {"role": "assistant", "content": "from "}))
        if fault == "cut":
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write(_chunk(body["model"], {"content": self.name}))
        await response.write(_chunk(body["model"], {}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@asynccontextmanager
async def stand_ins(*names: str) -> AsyncIterator[dict[str, StandIn]]:
    """A running :class:`StandIn` for each name."""
    ups = {name: StandIn(name) for name in names}
    for up in ups.values():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", up.handle)
        up.server = TestServer(app, host="127.0.0.1")
        await up.server.start_server()
    try:
        yield ups
    finally:
        for up in ups.values():
            assert up.server is not None
            await up.server.close()


def closed_url() -> str:
    """The base URL of a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def backend_table(name: str, base_url: str, **extra: str) -> str:
    """A ``[backends.NAME]`` table for an openai-compatible stand-in, retried never."""
    lines = [
        f"[backends.{name}]",
        'plugin = "openai-compatible"',
        f'base_url = "{base_url}"',
        "retries = 0",
        "read_timeout = 5.0",
    ]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def routed_server(config: str) -> AsyncIterator[tuple[web.Application, openai.AsyncOpenAI]]:
    """The translator's server for ``config`` on loopback, and an SDK client of it."""
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[openai_compat, ollama])
    app = create_app(parse_config(config), plugin_manager=pm)
    async with serving(app, shutdown_timeout=1.0) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
        try:
            yield app, client
        finally:
            await client.close()
