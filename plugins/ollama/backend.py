"""The ``ollama`` backend: a local model through Ollama's native ``POST /api/chat``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping

from msgspec import UNSET

from translator.plugin_api import (
    Backend,
    BoundClient,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChunkStream,
    MalformedUpstreamError,
    Matrix,
    MediaFetcher,
    answer_as_call,
    chunks_from_response,
    forced_call,
)

from . import native
from .matrix import MATRIX
from .reply import LineTranslator, decode_reply, error_message
from .request import build, remote_images

__all__ = ["DEFAULT_BASE_URL", "OllamaBackend"]

DEFAULT_BASE_URL = "http://localhost:11434"

_encode = native.request_encoder.encode


class OllamaBackend(Backend):
    """Talks to one Ollama server; keeps no conversation state (the translator does).

    ``models`` maps the model names clients use to Ollama's; a name it does
    not map is sent as it is. Remote images are fetched through ``fetcher``.
    """

    keeps_sessions = False

    def __init__(
        self,
        http: BoundClient,
        fetcher: MediaFetcher,
        *,
        name: str = "ollama",
        base_url: str = DEFAULT_BASE_URL,
        models: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        matrix: Matrix = MATRIX,
        owns_fetcher: bool = False,
    ) -> None:
        self.name = name
        self.matrix = matrix
        self.url = base_url.rstrip("/") + "/api/chat"
        self.models = dict(models or {})
        self._http = http
        self._fetcher = fetcher
        self._owns_fetcher = owns_fetcher
        self._headers = {"Content-Type": "application/json", **(headers or {})}

    def native_model(self, model: str) -> str:
        """The Ollama model for the client's ``model``."""
        return self.models.get(model, model)

    # -- pure halves ----------------------------------------------------------

    def native_request(
        self, request: ChatRequest, *, stream: bool, fetched: Mapping[str, str] | None = None
    ) -> native.ChatRequest:
        """The Ollama request struct; ``fetched`` holds remote images as base64 by param."""
        model = self.native_model(request.model)
        return build(request, model=model, stream=stream, fetched=fetched)

    def encode_request(self, request: ChatRequest) -> bytes:
        model = request.model
        native_request = build(
            request, model=self.models.get(model, model), stream=request.stream is True
        )
        return _encode(native_request)

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        return decode_reply(body, model=model, backend=self.name)

    # -- I/O ------------------------------------------------------------------

    async def _body(self, request: ChatRequest, *, stream: bool) -> bytes:
        remote = remote_images(request)
        fetched = await self._fetch_all(remote) if remote else None
        native_request = self.native_request(request, stream=stream, fetched=fetched)
        return native.request_encoder.encode(native_request)

    async def _fetch_one(self, param: str, url: str) -> str:
        fetched = await self._fetcher.fetch(url, param=param, accept=("image/",))
        return base64.b64encode(fetched.data).decode("ascii")

    async def _fetch_all(self, remote: list[tuple[str, str]]) -> dict[str, str]:
        if len(remote) == 1:
            param, url = remote[0]
            return {param: await self._fetch_one(param, url)}
        tasks = [asyncio.ensure_future(self._fetch_one(p, u)) for p, u in remote]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return {param: data for (param, _), data in zip(remote, results, strict=True)}

    async def complete(self, request: ChatRequest) -> ChatResponse:
        # Read first: a forced call's schema that cannot be checked is a 400 before any I/O.
        forced = forced_call(request) if request.tool_choice is not UNSET else None
        body = await self._body(request, stream=False)
        # /api/chat creates nothing (the translator keeps sessions): safe to repeat.
        reply = await self._http.send(
            "POST", self.url, body=body, headers=self._headers, idempotent=True
        )
        self._http.check(reply, error_message)
        response = self.decode_response(reply.body, model=request.model)
        return response if forced is None else answer_as_call(response, forced, self.name)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        if request.tool_choice is not UNSET and forced_call(request) is not None:
            # A forced call is one JSON answer, checked whole against its schema
            # before the stream starts: the call is one delta.
            answer = await self.complete(request)
            for chunk in chunks_from_response(answer, include_usage=request.wants_usage):
                yield chunk
            return
        body = await self._body(request, stream=True)
        lines = LineTranslator(
            ChunkStream(request.model), include_usage=request.wants_usage, backend=self.name
        )
        async with self._http.stream(
            "POST",
            self.url,
            body=body,
            headers=self._headers,
            parse_error=error_message,
            idempotent=True,
        ) as response:
            buffer = bytearray()
            limit = self._http.policy.max_reply_bytes
            async for data in response.content.iter_any():
                buffer += data
                if len(buffer) > limit:  # one line that never ends
                    raise MalformedUpstreamError(
                        f"The {self.name} backend sent a line over the {limit} bytes this "
                        "server accepts (max_reply_bytes).",
                        backend=self.name,
                    )
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    line = buffer[start:end]
                    start = end + 1
                    if not line.strip():
                        continue
                    for chunk in lines.feed(line):
                        yield chunk
                    if lines.done:
                        return
                del buffer[:start]
            if buffer.strip():
                for chunk in lines.feed(buffer):
                    yield chunk
        if not lines.done:
            raise MalformedUpstreamError(
                f"The {self.name} backend's stream ended before it was done.", backend=self.name
            )

    async def aclose(self) -> None:
        if self._owns_fetcher:
            await self._fetcher.aclose()
