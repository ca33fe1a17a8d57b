"""Writing a chat completion stream as server-sent events."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

from .._openai.sse import SSE_DONE, data_frame, sse_frame
from ..errors import TranslatorError

__all__ = ["SSEWriter"]

_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class SSEWriter:
    """One stream's events, each encoded into the same reused buffer.

    After :meth:`start`, a stream ends either with :meth:`done` (``[DONE]``)
    or with :meth:`error` (an ``error`` event and no ``[DONE]``, so the client
    sees a failure rather than a clean stop).
    """

    __slots__ = ("_buffer", "response")

    def __init__(self) -> None:
        self.response = web.StreamResponse(status=200, headers=_HEADERS)
        self._buffer = bytearray()

    async def start(self, request: web.Request, headers: Mapping[str, str] | None = None) -> None:
        """Send the status and headers."""
        if headers:
            self.response.headers.update(headers)
        await self.response.prepare(request)

    async def send(self, event: msgspec.Struct) -> None:
        """One ``data: {...}`` event."""
        await self.response.write(sse_frame(event, self._buffer))

    async def done(self) -> None:
        """The final ``data: [DONE]`` event."""
        await self.response.write(SSE_DONE)
        await self.response.write_eof()

    async def error(self, error: TranslatorError) -> None:
        """End the stream with ``data: {"error": {...}}``."""
        await self.response.write(data_frame(error.to_json()))
        await self.response.write_eof()
