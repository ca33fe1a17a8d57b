"""``translator serve`` in a child process, as users run it, and loopback upstreams for it.

:func:`start_serve` runs the command on port 0, reads the banner and returns
the process with its OpenAI base URL; :func:`stop` ends it with a signal and
waits. :class:`RecordingUpstream` is an OpenAI-compatible chat server that
keeps every request body it was sent, so a test sees exactly the history a
backend received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["RecordingUpstream", "Served", "call", "start_serve", "stop"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str
    """The OpenAI base URL, ``http://127.0.0.1:PORT/v1/openai``."""
    banner: str


def start_serve(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Served:
    """Start ``translator serve --port 0 ARGS`` and wait for its banner."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "translator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environ,
        cwd=cwd,
    )
    assert process.stdout is not None
    banner = ""
    while "python -c" not in banner:  # the banner's last line
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            raise AssertionError(f"translator serve exited early ({process.returncode}): {banner}")
        banner += line
    base = banner.split("OpenAI base URL: ", 1)[1].split()[0]
    return Served(process, base, banner)


def stop(served: Served, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the server and wait for it; its exit status."""
    if served.process.poll() is None:
        served.process.send_signal(sig)
    try:
        return served.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
        raise


def call(url: str, body: Any = None, *, timeout: float = 10) -> tuple[int, Any]:
    """One request on a fresh connection (never a kept-alive one): ``(status, JSON body)``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Connection": "close"})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


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
