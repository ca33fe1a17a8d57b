"""The ``openai-compatible`` backend: the request as OpenAI JSON after the matrix,
its answer or its server-sent events read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from msgspec import UNSET

from translator.plugin_api import (
    Backend,
    BoundClient,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FilePart,
    FileSource,
    MalformedUpstreamError,
    Matrix,
    NeedsIOError,
    SSEDecoder,
    caller_scope,
    encode_request,
    is_file_id,
)

from .files import file_parts, inline_file
from .matrix import MATRIX, VLMRUN_FIELDS, fitted
from .options import Options
from .reply import DONE, ChunkDecoder, decode_response, parse_error, reported_error

__all__ = ["OpenAICompatBackend", "SessionKeepingBackend"]


class OpenAICompatBackend(Backend):
    """Talks to one OpenAI-compatible upstream through the shared HTTP client."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        http: BoundClient,
        api_key: str | None = None,
        matrix: Matrix = MATRIX,
        options: Options | None = None,
        files: FileSource | None = None,
    ) -> None:
        self.name = name
        self.matrix = fitted(matrix, keeps_sessions=self.keeps_sessions)
        self.files = files
        self.http = http
        self.options = options or Options()
        self.url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(self.options.headers)
        self._headers = headers
        self._stream_headers = {**headers, "Accept": "text/event-stream"}
        # The upstream's model name: one for every request, a table, or the name asked for.
        model = self.options.model
        self._fixed_model = model if isinstance(model, str) else None
        self._models = model or None if isinstance(model, dict) else None

    def _repeatable(self, request: ChatRequest) -> bool:
        """Whether a chat completion may be sent again after a 502, 504 or a lost connection.

        A chat completion creates nothing upstream, so it may; except a turn
        of a session that the upstream keeps, which a repeat would add twice.
        """
        return not self.keeps_sessions or request.session is None

    def encode_request(self, request: ChatRequest) -> bytes:
        """The upstream's request body: the OpenAI JSON, with the upstream's model name.

        Raises :class:`NeedsIOError` for a file id that may name a file uploaded
        to the translator: its content must be read first (:meth:`complete` does).
        """
        if self.files is not None:
            for i, j, part, file_id in file_parts(request):
                if is_file_id(file_id):
                    where = "file.file_id" if type(part) is FilePart else "file_id"
                    raise NeedsIOError(
                        f"The file '{file_id}' must be read from the translator's file store "
                        f"and sent inline to the {self.name} backend.",
                        param=f"messages[{i}].content[{j}].{where}",
                    )
        return self._encode(request)

    def _encode(self, request: ChatRequest) -> bytes:
        if self._fixed_model is not None:
            request.model = self._fixed_model
        elif self._models is not None:
            request.model = self._models.get(request.model, request.model)
        vlmrun = request.vlmrun
        if vlmrun is not UNSET and all(getattr(vlmrun, f) is UNSET for f in VLMRUN_FIELDS):
            request.vlmrun = UNSET  # every part of it was dropped
        return encode_request(request)

    async def inline_files(self, request: ChatRequest) -> None:
        """Put the content of every file uploaded to the translator into ``request``.

        A ``file`` part naming such a file by ``file_id`` gets ``file_data`` (a
        data URI) and ``filename`` instead; an ``input_file`` part (sent only
        when the matrix supports it) becomes such a ``file`` part. An id the
        store does not know is left as it is: the upstream's own. Messages are
        replaced, not changed, so a session's stored history keeps the id.
        """
        files = self.files
        found = file_parts(request) if files is not None else None
        if not found:
            return
        assert files is not None
        ids = list(dict.fromkeys(file_id for *_, file_id in found))
        scope = caller_scope(request)  # the caller's files only
        reads = await asyncio.gather(*(files.read(i, scope=scope) for i in ids))
        read = dict(zip(ids, reads, strict=True))
        messages = list(request.messages)
        copies: dict[int, list[Any]] = {}
        for i, j, part, file_id in found:
            known = read[file_id]
            if known is None:
                continue
            content = copies.get(i)
            if content is None:
                message = messages[i]
                content = copies[i] = list(message.content)  # type: ignore[arg-type]
                messages[i] = msgspec.structs.replace(message, content=content)
            filename, content_type, data = known
            content[j] = inline_file(part, filename, content_type, data)
        if copies:
            request.messages = messages

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        return decode_response(body, model=model, backend=self.name)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if request.stream is True:
            request.stream = UNSET
        request.stream_options = UNSET
        await self.inline_files(request)
        body = self._encode(request)
        reply = await self.http.send(
            "POST", self.url, body=body, headers=self._headers, idempotent=self._repeatable(request)
        )
        self.http.check(reply, parse_error)
        return self.decode_response(reply.body, model=request.model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        request.stream = True
        await self.inline_files(request)
        body = self._encode(request)
        chunks = ChunkDecoder(request.model, self.name)
        sse = SSEDecoder()
        async with self.http.stream(
            "POST",
            self.url,
            body=body,
            headers=self._stream_headers,
            parse_error=parse_error,
            idempotent=self._repeatable(request),
        ) as response:
            if response.content_type == "application/json":
                reply = await self.http.read_reply(response)
                raise reported_error(reply, self.name, "answered with JSON, not events")
            async for piece in response.content.iter_any():
                for event in sse.feed(piece):
                    if event.data == DONE:
                        return
                    yield chunks.decode(event)
            for event in sse.close():
                if event.data == DONE:
                    return
                yield chunks.decode(event)
        raise MalformedUpstreamError(
            f"The {self.name} backend's stream ended without [DONE]: it was cut off.",
            backend=self.name,
        )


class SessionKeepingBackend(OpenAICompatBackend):
    """An upstream that keeps conversation state by ``session_id`` (an agents endpoint)."""

    keeps_sessions = True
