"""Loopback helpers for tests of ``translator serve`` in child processes.

:class:`RecordingUpstream` is an OpenAI-compatible chat server that keeps every
request body it was sent, so a test sees exactly the history a backend
received. The processes themselves come from :mod:`benchmarks.serve_process`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from benchmarks.serve_process import Served, start_serve, stop

__all__ = ["RecordingUpstream", "Served", "start_serve", "stop"]


@dataclass
class RecordingUpstream:
    """An OpenAI-compatible ``/v1/chat/completions`` that answers ``re: <last message>``."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def contents(self, index: int = -1) -> list[str]:
        """The message texts of the ``index``-th request received."""
        return [m["content"] for m in self.bodies[index]["messages"]]

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        last = body["messages"][-1]["content"]
        answer = {
            "id": f"chatcmpl-{len(self.bodies)}",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"re: {last}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return web.json_response(answer)
