"""HTTP/1.1 over a raw socket: for bytes a client library refuses to send, and for
reading exactly what the server wrote (several pipelined answers, or none)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

__all__ = ["Answer", "RawClient", "post_json", "read_answer"]


class Answer:
    """One HTTP response as read off the wire."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The OpenAI error object, checked for its shape."""
        body = self.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}
        error: dict[str, Any] = body["error"]
        return error


def post_json(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A whole POST request with a JSON body."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += [f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_answer(reader: asyncio.StreamReader) -> Answer | None:
    """The next response (Content-Length or chunked), or None if the connection ended first."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        partial = exc.partial
    else:
        partial = None
    if partial is not None:
        assert partial == b"", f"a response cut short: {partial[:200]!r}"
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    assert status_line.startswith("HTTP/1."), f"no status line: {head[:200]!r}"
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
        return Answer(int(status_line.split()[1]), headers, bytes(body))
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


class RawClient:
    """One connection to ``root`` (``http://host:port``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, root: str) -> RawClient:
        host, port = root.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within: float = 10.0) -> Answer | None:
        async with asyncio.timeout(within):
            return await read_answer(self.reader)

    async def closed(self, within: float = 10.0) -> bool:
        """Whether the server closes the connection (within ``within`` s) without writing more."""
        async with asyncio.timeout(within):
            try:
                rest = await self.reader.read()
            except ConnectionResetError:
                return True
        assert rest == b"", f"unexpected bytes: {rest[:200]!r}"
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
