"""The ``vlm-agent`` backend: a chat completion as an agent execution.

``complete`` uploads the files the agent has not seen yet, posts the
execution to ``{base_url}/agent/execute``, then polls
``{base_url}/agent/executions/{id}`` (the wait growing by ``poll_backoff`` up
to ``poll_max_interval``) until it is ``completed`` or ``failed``, all within
one overall ``deadline``. A file uploaded to this translator is uploaded to
the agent server once (``POST {base_url}/files?purpose=assistants``), even
when two requests name it at the same time; the agent's id is remembered.
With a shared cache in the backend's context (the server's Redis), the id is
remembered for every process and replica, and the file uploaded once by one
of them.
Remembered ids are the caller's: kept per :func:`caller_scope` of the
request (with API keys, one per key), so that one caller's upload is never
resolved for another, whatever ids they know.
When the agent server refuses an execution because it no longer knows a
remembered file (its id named in a 4xx), that file is uploaded again and the
execution posted once more, once.

Retries: posting an execution or a file creates a job or a file, so those are
not idempotent (retried only when nothing reached the agent server, or on 429
and 503); a poll is, and is retried on 502 and 504 too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Final

import msgspec
from msgspec import UNSET, Meta

from translator.plugin_api import (
    UPSTREAM_AUTH_CODE,
    Backend,
    BoundClient,
    ChatRequest,
    ChatResponse,
    FileSource,
    MalformedUpstreamError,
    Matrix,
    NeedsIOError,
    SharedCache,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    answer_as_call,
    caller_scope,
    forced_call,
    is_file_id,
)

from .answer import timed_out, to_response
from .matrix import MATRIX
from .prompt import DEFAULT_MODEL, Execute, build_execute, file_ids, wants_json
from .wire import (
    WAITING,
    ExecuteRequest,
    Execution,
    decode_execution,
    decode_file,
    encode_execute,
    error_message,
    multipart_file,
)

_FileKey = tuple[str | None, str]
"""(the caller's scope, our file id): agent ids are cached per scope."""

__all__ = ["DEFAULT_BASE_URL", "Options", "VlmAgentBackend"]

log = logging.getLogger("translator_plugins.vlm_agent")

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


_UNKNOWN_FILE_STATUSES: Final = frozenset({400, 404, 410, 422})
"""Statuses with which the agent server may refuse an execute naming a file it lacks."""


def _names(message: str, agent_id: str) -> bool:
    """Whether ``message`` names ``agent_id`` as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(agent_id)}(?![\w-])", message) is not None


def _final(error: UpstreamError) -> bool:
    """A poll error that waiting will not cure: an unreadable reply, refused credentials."""
    return isinstance(error, MalformedUpstreamError) or error.code == UPSTREAM_AUTH_CODE


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
        shared: SharedCache | None = None,
    ) -> None:
        self.name = name
        self.matrix = matrix or Matrix(name, MATRIX.rules, unknown=MATRIX.unknown)
        self.options = options or Options()
        self.deadline = self.options.deadline or deadline
        self.files = files
        self.shared = shared
        """Agent file ids shared with the other processes of the server, if any."""
        self._http = http
        base = base_url.rstrip("/")
        self._execute_url = f"{base}/agent/execute"
        self._executions_url = f"{base}/agent/executions/"
        self._files_url = f"{base}/files"
        self._auth: dict[str, str] = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._json_headers = {**self._auth, "Content-Type": "application/json"}
        # Keyed by (caller scope, our id): with API keys, one caller's upload is
        # never resolved for another, whatever ids they know.
        self._agent_files: dict[_FileKey, str] = {}
        self._uploads: dict[_FileKey, asyncio.Future[str | None]] = {}

    # -- translation ----------------------------------------------------------

    def agent_model(self, model: str) -> str:
        """The agent model that serves the client's ``model``."""
        return self.options.models.get(model, self.options.default_model)

    def encode_request(self, request: ChatRequest) -> bytes:
        """The execute body; :class:`NeedsIOError` if a file must be uploaded first."""
        scope = caller_scope(request)
        if self.files is not None:  # without a file store, no file can need uploading
            for file_id, param in file_ids(request).items():
                if (scope, file_id) not in self._agent_files and is_file_id(file_id):
                    raise NeedsIOError(
                        f"The file '{file_id}' must be uploaded to the agent server first.",
                        param=param,
                    )
        options = self.options
        execute = build_execute(
            request,
            model=options.models.get(request.model, options.default_model),
            agent_files=self._visible(scope),
            toolsets=options.toolsets,
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
        # Read first: a forced call's schema that cannot be checked is a 400 before any upload.
        forced = forced_call(request) if request.tools is not UNSET else None
        progress = _Progress()
        ids = file_ids(request)
        try:
            async with asyncio.timeout(self.deadline) as scope:
                execute, execution = await self._start(request, ids)
                progress.execution = execution
                execution = await self._poll(execution, progress)
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
            json=forced is not None or wants_json(request),
            prompt=execute.prompt,
            backend=self.name,
        )
        return response if forced is None else answer_as_call(response, forced, self.name)

    async def _start(
        self, request: ChatRequest, ids: Mapping[str, str]
    ) -> tuple[Execute, Execution]:
        """Upload the files, post the execution; once more if the agent forgot a file."""
        scope = caller_scope(request)
        execute = await self._build(request, ids, scope)
        try:
            return execute, await self._execute(execute.request)
        except UpstreamStatusError as exc:
            stale = self._stale(exc, ids, scope)
            if not stale:
                raise
        log.warning(
            "%s: the agent server no longer knows %s; uploading again",
            self.name,
            ", ".join(stale.values()),
        )
        await self._forget(stale, scope)
        execute = await self._build(request, ids, scope)
        return execute, await self._execute(execute.request)

    async def _build(
        self, request: ChatRequest, ids: Mapping[str, str], scope: str | None
    ) -> Execute:
        """The execute request, once the files it names are on the agent server."""
        agent_files = await self._resolve(ids, scope)
        return build_execute(
            request,
            model=self.agent_model(request.model),
            agent_files=agent_files,
            toolsets=self.options.toolsets,
            backend=self.name,
        )

    async def _execute(self, request: ExecuteRequest) -> Execution:
        """Post the execution; the agent server's answer says how far it got.

        Not idempotent: the agent server creates a job for each request it
        accepts, so a gateway's 502 or 504 is not retried.
        """
        reply = self._http.check(
            await self._http.send(
                "POST",
                self._execute_url,
                body=encode_execute(request),
                headers=self._json_headers,
                idempotent=False,
            ),
            error_message,
        )
        return self._decode_execution(reply.body)

    async def _poll(self, execution: Execution, progress: _Progress) -> Execution:
        """Poll ``execution`` until it is finished.

        A poll changes nothing, so it is idempotent. One that fails with a 5xx
        (after the client's own retries) or cannot reach the agent server is
        not the end: the job is still running there, so polling goes on until
        the deadline. The agent server refusing the credentials is the end.
        """
        url = self._executions_url + execution.id
        interval = self.options.poll_interval
        while execution.status in WAITING:
            await asyncio.sleep(interval)
            interval = min(interval * self.options.poll_backoff, self.options.poll_max_interval)
            try:
                reply = self._http.check(
                    await self._http.send("GET", url, headers=self._auth, idempotent=True),
                    error_message,
                )
            except UpstreamError as exc:
                if exc.status < 500 or _final(exc):
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

    def _stale(
        self, error: UpstreamStatusError, ids: Mapping[str, str], scope: str | None
    ) -> dict[str, str]:
        """Our file ids (``scope``'s) whose cached agent ids ``error`` says the agent
        server does not know.

        The agent server forgets files (they expire); an execute naming one is
        refused with a 4xx whose message names the file.
        """
        if error.status not in _UNKNOWN_FILE_STATUSES:
            return {}
        stale: dict[str, str] = {}
        for ours in ids:
            agent_id = self._agent_files.get((scope, ours))
            if agent_id is not None and _names(error.message, agent_id):
                stale[ours] = agent_id
        return stale

    async def _forget(self, stale: Mapping[str, str], scope: str | None) -> None:
        """Drop ``scope``'s cached agent ids (unless another request has already
        replaced them)."""
        for ours, agent_id in stale.items():
            if self._agent_files.get((scope, ours)) == agent_id:
                del self._agent_files[scope, ours]
            if self.shared is not None:
                await self.shared.forget(self._shared_key((scope, ours)), agent_id)

    async def _resolve(self, ids: Mapping[str, str], scope: str | None) -> Mapping[str, str]:
        """Our file ids -> the agent's, uploading what the agent has not seen from ``scope``."""
        todo = [i for i in ids if (scope, i) not in self._agent_files and self.files is not None]
        if todo:
            await asyncio.gather(*(self._agent_file((scope, i)) for i in todo))
        return self._visible(scope)

    def _visible(self, scope: str | None) -> dict[str, str]:
        """Our ids -> the agent's, for the files uploaded in ``scope``."""
        return {ours: agent for (who, ours), agent in self._agent_files.items() if who == scope}

    async def _agent_file(self, key: _FileKey) -> str | None:
        """The agent's id for our file ``key``, None when our store does not know it."""
        upload = self._uploads.get(key)
        if upload is None:
            if self.shared is not None:  # one upload across every process
                made = self.shared.remember(self._shared_key(key), lambda: self._upload(key))
            else:
                made = self._upload(key)
            upload = asyncio.ensure_future(made)
            self._uploads[key] = upload
            upload.add_done_callback(functools.partial(self._uploaded, key))
        return await asyncio.shield(upload)

    def _uploaded(self, key: _FileKey, upload: asyncio.Future[str | None]) -> None:
        self._uploads.pop(key, None)
        if not upload.cancelled() and upload.exception() is None:
            agent_id = upload.result()
            if agent_id is not None:
                self._agent_files[key] = agent_id

    def _shared_key(self, key: _FileKey) -> str:
        scope, ours = key
        return f"agent-file:{self.name}:{scope or ''}:{ours}"

    async def _upload(self, key: _FileKey) -> str | None:
        """Upload our file ``key`` (read in its scope) to the agent server: its id there."""
        assert self.files is not None
        scope, file_id = key
        found = await self.files.read(file_id, scope=scope)
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
                idempotent=False,  # each upload that arrives is a new file
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
