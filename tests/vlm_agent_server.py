"""A loopback agent server that runs jobs the way VLM Run's agent server does.

``POST /v1/agent/execute`` enqueues an execution; each
``GET /v1/agent/executions/{id}`` moves it on (``enqueued`` -> ``pending`` ->
``running`` ...) until, after ``polls`` polls, it is ``completed`` or
``failed``. ``POST /v1/files?purpose=assistants`` takes a multipart upload and
answers 201 with a ``FileResponse``; :meth:`FakeAgentServer.forget` drops an
uploaded file, as the agent server does when a file expires, after which an
execution naming it is refused (400, ``File not found: <id>``). Every request must carry
``Authorization: Bearer <api_key>``. What the server was sent is kept for the
tests to look at.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.schema_sample import sample

__all__ = ["AgentJob", "FakeAgentServer"]

EXECUTE_FIELDS = {
    "model",
    "name",
    "batch",
    "inputs",
    "config",
    "metadata",
    "toolsets",
    "callback_url",
}
CONFIG_FIELDS = {"prompt", "json_schema", "temperature", "service_tier"}
"""The fields of the agent protocol's ``AgentExecutionConfig`` this translator may send."""
METADATA_FIELDS = {
    "environment",
    "session_id",
    "allow_training",
    "allow_retention",
    "allow_logging",
    "extra",
}
"""The request metadata fields the agent protocol defines."""
INPUT_TYPES = {"image_url", "video_url", "audio_url", "file_url", "input_file"}
CREATED = "2026-01-02T03:04:05Z"


@dataclass
class AgentJob:
    """One execution: what was asked, and how far it has got."""

    id: str
    body: dict[str, Any]
    polls: int = 0
    status: str = "enqueued"


@dataclass
class Upload:
    id: str
    filename: str
    content_type: str
    data: bytes


def default_answer(job: AgentJob) -> Any:
    """What the fake agent says: a value of ``config.json_schema`` when one is asked for,
    else the last line of the prompt, and how many inputs it saw."""
    schema = job.body["config"].get("json_schema")
    if schema is not None:
        return sample(schema)
    prompt = job.body["config"]["prompt"]
    inputs = job.body.get("inputs") or {}
    return {"content": f"Seen {len(inputs)} input(s). You said: {prompt.splitlines()[-1]}"}


@dataclass
class FakeAgentServer:
    """The agent server's job API, in memory."""

    api_key: str = "agent-key"
    polls: int = 3
    """Polls before a job is finished (the first is ``pending``, then ``running``)."""
    answer: Callable[[AgentJob], Any] = default_answer
    fail_with: str | None = None
    """When set, jobs fail with this message (in ``usage.message``)."""
    never_finish: bool = False
    execute_statuses: list[int] = field(default_factory=list)
    """Error statuses to answer execute requests with, one per request, before accepting."""
    jobs: dict[str, AgentJob] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    known_files: set[str] = field(default_factory=set)
    """Agent file ids an execution may name (uploads are added)."""
    hits: Counter[str] = field(default_factory=Counter)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/agent/execute", self.execute)
        app.router.add_get("/v1/agent/executions/{id}", self.execution)
        app.router.add_post("/v1/files", self.upload)
        return app

    def forget(self, file_id: str) -> None:
        """Drop an uploaded file, as when it expires on the agent server."""
        self.known_files.discard(file_id)

    @property
    def executed(self) -> list[dict[str, Any]]:
        """The bodies of accepted execute requests, in order."""
        return [job.body for job in self.jobs.values()]

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[f"{request.method} {request.path}"] += 1
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Invalid API key"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def execute(self, request: web.Request) -> web.Response:
        if self.execute_statuses:
            status = self.execute_statuses.pop(0)
            return web.json_response({"detail": f"Service busy ({status})"}, status=status)
        body = await request.json()
        problem = self._check(body)
        if problem:
            return web.json_response({"detail": problem}, status=400)
        job = AgentJob(f"exec-{next(self._ids)}", body)
        self.jobs[job.id] = job
        return web.json_response(self._view(job), status=201)

    async def execution(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"detail": "Execution not found"}, status=404)
        job.polls += 1
        if self.never_finish or job.polls < self.polls:
            job.status = "pending" if job.polls == 1 else "running"
        else:
            job.status = "failed" if self.fail_with else "completed"
        return web.json_response(self._view(job))

    async def upload(self, request: web.Request) -> web.Response:
        if request.query.get("purpose") != "assistants":
            return web.json_response({"detail": "purpose must be assistants"}, status=400)
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return web.json_response({"detail": "field 'file' is required"}, status=422)
        data = part.file.read()
        agent_id = f"agent-file-{len(self.uploads) + 1}"
        upload = Upload(agent_id, part.filename, part.content_type, data)
        self.uploads.append(upload)
        self.known_files.add(upload.id)
        body = {
            "id": upload.id,
            "filename": upload.filename,
            "bytes": len(data),
            "purpose": "assistants",
            "created_at": CREATED,
            "object": "file",
        }
        return web.json_response(body, status=201)

    def _check(self, body: Any) -> str | None:
        """Why an execute body is not one the agent server takes, or None."""
        if not isinstance(body, dict):
            return "body must be an object"
        if body.get("batch") is not True:
            return "batch must be true"
        if not isinstance(body.get("model"), str):
            return "model is required"
        config = body.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("prompt"), str):
            return "config.prompt is required"
        if config.keys() - CONFIG_FIELDS:
            return f"config has unknown fields: {sorted(config.keys() - CONFIG_FIELDS)}"
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            return "metadata must be an object"
        if metadata.keys() - METADATA_FIELDS:
            return f"metadata has unknown fields: {sorted(metadata.keys() - METADATA_FIELDS)}"
        if body.keys() - EXECUTE_FIELDS:
            return f"unknown fields: {sorted(body.keys() - EXECUTE_FIELDS)}"
        inputs = body.get("inputs")
        if inputs is None:
            return None
        if not isinstance(inputs, dict):
            return "inputs must be an object"
        for key, part in inputs.items():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in INPUT_TYPES or (kind != "input_file" and kind not in part):
                return f"inputs.{key} is not a MessageContent"
            if kind == "input_file" and part.get("file_id") not in self.known_files:
                return f"File not found: {part.get('file_id')}"
        return None

    def _view(self, job: AgentJob) -> dict[str, Any]:
        inputs = job.body.get("inputs") or {}
        view: dict[str, Any] = {
            "id": job.id,
            "name": job.body.get("name") or "inline-agent",
            "status": job.status,
            "created_at": CREATED,
            "completed_at": None,
            "response": None,
            "usage": {"credits_used": 0, "steps": 0, "duration_seconds": 0},
        }
        if job.status == "completed":
            view["response"] = self.answer(job)
            view["completed_at"] = "2026-01-02T03:04:09Z"
            view["usage"] = {
                "elements_processed": len(inputs),
                "element_type": "image",
                "credits_used": 1 + len(inputs),
                "steps": job.polls,
                "duration_seconds": 4,
            }
        elif job.status == "failed":
            view["usage"] = {"credits_used": 1, "steps": 1, "message": self.fail_with}
        return view
