"""The ``vlm-agent`` backend: a chat completion as an agent execution.

``complete`` uploads the files the agent has not seen yet, posts the
execution to ``{base_url}/agent/execute``, then polls
``{base_url}/agent/executions/{id}`` (the wait growing by ``poll_backoff`` up
to ``poll_max_interval``) until it is ``completed`` or ``failed``, all within
one overall ``deadline``. A file uploaded to this translator is uploaded to
the agent server once (``POST {base_url}/files?purpose=assistants``), even
when two requests name it at the same time; the agent's id is remembered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from translator.backend import Backend, FileSource
from translator.compat import Matrix
from translator.errors import (
    MalformedUpstreamError,
    NeedsIOError,
    UpstreamError,
    UpstreamTimeoutError,
)
from translator.http import BoundClient
from translator.model import ChatChunk, ChatRequest, ChatResponse
from translator.stores.files import is_file_id
from translator.streaming import chunks_from_response

from .answer import timed_out, to_response
from .matrix import MATRIX
from .prompt import DEFAULT_MODEL, build_execute, file_ids, wants_json
from .wire import (
    WAITING,
    Execution,
    decode_execution,
    decode_file,
    encode_execute,
    error_message,
    multipart_file,
)

__all__ = ["DEFAULT_BASE_URL", "Options", "VlmAgentBackend"]

log = logging.getLogger("plugins.vlm_agent")

DEFAULT_BASE_URL: Final = "https://agent.vlm.run/v1"

Seconds = Annotated[float, Meta(gt=0)]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` table of a ``vlm-agent`` backend's configuration."""

    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Client model name -> agent model; a name not listed gets ``default_model``."""
    default_model: str = DEFAULT_MODEL
    poll_interval: Seconds = 1.0
    """The first wait between polls of an execution."""
    poll_backoff: Annotated[float, Meta(ge=1)] = 1.5
    """Each wait is this many times the one before ..."""
    poll_max_interval: Seconds = 10.0
    """... up to this many seconds."""
    deadline: Seconds | None = None
    """Seconds an execution may take, upload to answer; default: ``total_timeout``."""
    retry_backoff: Annotated[float, Meta(ge=0)] = 0.25
    """The first wait before retrying a failed HTTP attempt."""
    toolsets: list[str] | None = None
    """Tool categories the agent may use (``core``, ``image``, ``web``, ...); default: its own."""


class _Progress:
    """How far an execution got: what it said last, and whether the last poll failed."""

    __slots__ = ("execution", "poll_error")

    def __init__(self) -> None:
        self.execution: Execution | None = None
        self.poll_error: str | None = None


class VlmAgentBackend(Backend):
    """Chat completions answered by VLM Run agent executions."""

    keeps_sessions = True

    def __init__(
        self,
        name: str,
        *,
        http: BoundClient,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        options: Options | None = None,
        deadline: float = 600.0,
        files: FileSource | None = None,
        matrix: Matrix | None = None,
    ) -> None:
        self.name = name
        self.matrix = matrix or Matrix(name, MATRIX.rules, unknown=MATRIX.unknown)
        self.options = options or Options()
        self.deadline = self.options.deadline or deadline
        self.files = files
        self._http = http
        base = base_url.rstrip("/")
        self._execute_url = f"{base}/agent/execute"
        self._executions_url = f"{base}/agent/executions/"
        self._files_url = f"{base}/files"
        self._auth: dict[str, str] = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._json_headers = {**self._auth, "Content-Type": "application/json"}
        self._agent_files: dict[str, str] = {}
        self._uploads: dict[str, asyncio.Future[str | None]] = {}

    # -- translation ----------------------------------------------------------

    def agent_model(self, model: str) -> str:
        """The agent model that serves the client's ``model``."""
        return self.options.models.get(model, self.options.default_model)

    def encode_request(self, request: ChatRequest) -> bytes:
        """The execute body; :class:`NeedsIOError` if a file must be uploaded first."""
        for file_id, param in file_ids(request).items():
            if file_id not in self._agent_files and self._may_know(file_id):
                raise NeedsIOError(
                    f"The file '{file_id}' must be uploaded to the agent server first.",
                    param=param,
                )
        execute = build_execute(
            request,
            model=self.agent_model(request.model),
            agent_files=self._agent_files,
            toolsets=self.options.toolsets,
            backend=self.name,
        )
        return encode_execute(execute.request)

    def decode_response(self, body: bytes, *, model: str, json: bool = False) -> ChatResponse:
        """The chat completion for a finished execution ``body`` (``json``: a schema was asked)."""
        execution = self._decode_execution(body)
        if execution.status in WAITING:
            raise MalformedUpstreamError(
                f"The execution {execution.id} is still {execution.status}; only a finished "
                "execution is a chat completion.",
                backend=self.name,
            )
        return to_response(execution, model=model, json=json, backend=self.name)

    # -- the job -------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatResponse:
        progress = _Progress()
        try:
            async with asyncio.timeout(self.deadline) as scope:
                agent_files = await self._resolve(file_ids(request))
                execute = build_execute(
                    request,
                    model=self.agent_model(request.model),
                    agent_files=agent_files,
                    toolsets=self.options.toolsets,
                    backend=self.name,
                )
                execution = await self._run(encode_execute(execute.request), progress)
        except TimeoutError as exc:
            if isinstance(exc, UpstreamTimeoutError) or not scope.expired():
                raise
            if progress.execution is not None:
                raise timed_out(
                    progress.execution, self.deadline, self.name, progress.poll_error
                ) from None
            raise UpstreamTimeoutError(
                f"The {self.name} backend did not accept the execution within {self.deadline:g}s.",
                backend=self.name,
            ) from None
        response = to_response(
            execution,
            model=request.model,
            json=wants_json(request),
            prompt=execute.prompt,
            backend=self.name,
        )
        session = request.session
        if session is not None:
            response.session_id = session
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The whole answer as chunks (the agent does not stream)."""
        options = request.stream_options
        include_usage = bool(options) and options.include_usage is True  # type: ignore[union-attr]
        response = await self.complete(request)
        for chunk in chunks_from_response(response, include_usage=include_usage):
            yield chunk

    async def _run(self, body: bytes, progress: _Progress) -> Execution:
        """Post the execution and poll it until it is finished.

        A poll that fails with a 5xx (after the client's own retries) or cannot
        reach the agent server is not the end: the job is still running there,
        so polling goes on until the deadline.
        """
        reply = self._http.check(
            await self._http.send("POST", self._execute_url, body=body, headers=self._json_headers),
            error_message,
        )
        execution = progress.execution = self._decode_execution(reply.body)
        url = self._executions_url + execution.id
        interval = self.options.poll_interval
        while execution.status in WAITING:
            await asyncio.sleep(interval)
            interval = min(interval * self.options.poll_backoff, self.options.poll_max_interval)
            try:
                reply = self._http.check(
                    await self._http.send("GET", url, headers=self._auth), error_message
                )
            except UpstreamError as exc:
                if exc.status < 500 or isinstance(exc, MalformedUpstreamError):
                    raise
                log.warning("%s: polling %s failed, still waiting: %s", self.name, url, exc)
                progress.poll_error = exc.message
                continue
            execution = progress.execution = self._decode_execution(reply.body)
            progress.poll_error = None
        return execution

    def _decode_execution(self, body: bytes) -> Execution:
        try:
            return decode_execution(body)
        except msgspec.DecodeError as exc:
            raise MalformedUpstreamError(
                f"The {self.name} backend sent an execution that could not be read: {exc}",
                backend=self.name,
            ) from exc

    # -- files ---------------------------------------------------------------

    def _may_know(self, file_id: str) -> bool:
        """Whether ``file_id`` may name a file of this translator's own store."""
        return self.files is not None and is_file_id(file_id)

    async def _resolve(self, ids: Mapping[str, str]) -> Mapping[str, str]:
        """Our file ids -> the agent's, uploading what the agent has not seen."""
        todo = [i for i in ids if i not in self._agent_files and self.files is not None]
        if todo:
            await asyncio.gather(*(self._agent_file(i) for i in todo))
        return self._agent_files

    async def _agent_file(self, file_id: str) -> str | None:
        """The agent's id for our ``file_id``, None when our store does not know it."""
        upload = self._uploads.get(file_id)
        if upload is None:
            upload = asyncio.ensure_future(self._upload(file_id))
            self._uploads[file_id] = upload
            upload.add_done_callback(functools.partial(self._uploaded, file_id))
        return await asyncio.shield(upload)

    def _uploaded(self, file_id: str, upload: asyncio.Future[str | None]) -> None:
        self._uploads.pop(file_id, None)
        if not upload.cancelled() and upload.exception() is None:
            agent_id = upload.result()
            if agent_id is not None:
                self._agent_files[file_id] = agent_id

    async def _upload(self, file_id: str) -> str | None:
        assert self.files is not None
        found = await self.files.read(file_id)
        if found is None:
            return None
        filename, content_type, data = found
        body, form_type = multipart_file(filename, content_type, data)
        reply = self._http.check(
            await self._http.send(
                "POST",
                self._files_url,
                body=body,
                headers={**self._auth, "Content-Type": form_type},
                params={"purpose": "assistants"},
            ),
            error_message,
        )
        try:
            agent_id = decode_file(reply.body).id
        except msgspec.DecodeError as exc:
            agent_id = None
            reason = str(exc)
        else:
            reason = "it has no id"
        if not agent_id:
            raise MalformedUpstreamError(
                f"The {self.name} backend's answer to a file upload could not be read: {reason}",
                backend=self.name,
            )
        log.info("%s: uploaded %s to the agent server as %s", self.name, file_id, agent_id)
        return agent_id

    async def aclose(self) -> None:
        """Stop uploads still running."""
        for upload in list(self._uploads.values()):
            upload.cancel()
        self._uploads.clear()
