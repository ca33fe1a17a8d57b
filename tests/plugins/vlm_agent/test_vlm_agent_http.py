"""The vlm-agent backend's HTTP conversation, client side, against aioresponses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import translator_plugins.vlm_agent as vlm_agent
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from translator._backend import BackendContext, BackendSettings
from translator._http import client as http_module
from translator._model import ChatRequest
from translator._openai import decode_request
from translator.errors import MalformedUpstreamError, TranslatorError
from translator.stores import MemoryFileStore

BASE = "http://127.0.0.1:9/v1"
EXECUTE = f"{BASE}/agent/execute"
FILES = f"{BASE}/files?purpose=assistants"


def poll_url(execution_id: str) -> str:
    return f"{BASE}/agent/executions/{execution_id}"


def execution(status: str, response: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "exec-1",
        "name": "inline",
        "status": status,
        "created_at": "2026-01-02T03:04:05Z",
        "response": response,
        "usage": {"credits_used": 2, "steps": 4, "duration_seconds": 3},
        **extra,
    }


@pytest.fixture
async def context() -> AsyncIterator[BackendContext]:
    ctx = BackendContext(files=MemoryFileStore())
    yield ctx
    await ctx.aclose()


def make(context: BackendContext, **options: Any) -> vlm_agent.VlmAgentBackend:
    settings = BackendSettings(
        plugin="vlm-agent",
        base_url=BASE,
        api_key="k-1",
        retries=2,
        options={"poll_interval": 0.001, "retry_backoff": 0.001, **options},
    )
    backend = vlm_agent.VlmAgentFactory().create("vlm-agent", settings, context)
    assert isinstance(backend, vlm_agent.VlmAgentBackend)
    return backend


def request(*parts: dict[str, Any]) -> ChatRequest:
    content: Any = list(parts) if parts else "Hi"
    return decode_request(
        msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": content}]})
    )


async def stored_file(context: BackendContext) -> dict[str, Any]:
    """An ``input_file`` part naming a file uploaded to this translator."""
    assert isinstance(context.files, MemoryFileStore)
    ours = await context.files.put("a.png", "image/png", b"png", "assistants", scope=None)
    return {"type": "input_file", "file_id": ours.id}


def calls(mocked: aioresponses, method: str, url: str) -> list[Any]:
    return mocked.requests.get((method, URL(url)), [])


async def test_execute_then_poll_with_the_bearer_key(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, status=201, payload=execution("enqueued"))
        mocked.get(poll_url("exec-1"), payload=execution("pending"))
        mocked.get(poll_url("exec-1"), payload=execution("running"))
        mocked.get(poll_url("exec-1"), payload=execution("paused"))
        mocked.get(poll_url("exec-1"), payload=execution("completed", {"content": "Hello!"}))
        response = await make(context).complete(request())
    assert response.choices[0].message.content == "Hello!"
    (post,) = calls(mocked, "POST", EXECUTE)
    assert post.kwargs["headers"]["Authorization"] == "Bearer k-1"
    assert msgspec.json.decode(post.kwargs["data"])["config"]["prompt"] == "Hi"
    polls = calls(mocked, "GET", poll_url("exec-1"))
    assert len(polls) == 4
    assert all(p.kwargs["headers"]["Authorization"] == "Bearer k-1" for p in polls)


async def test_an_execution_finished_at_once_is_not_polled(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("completed", "Quick."))
        response = await make(context).complete(request())
    assert response.choices[0].message.content == "Quick."
    assert calls(mocked, "GET", poll_url("exec-1")) == []


async def test_503_on_execute_is_retried_401_is_not(context: BackendContext) -> None:
    backend = make(context)
    with aioresponses() as mocked:
        mocked.post(EXECUTE, status=503, payload={"detail": "busy"})
        mocked.post(EXECUTE, status=503, payload={"detail": "busy"})
        mocked.post(EXECUTE, payload=execution("completed", "ok"))
        response = await backend.complete(request())
    assert response.choices[0].message.content == "ok"
    assert len(calls(mocked, "POST", EXECUTE)) == 3

    with aioresponses() as mocked:
        mocked.post(EXECUTE, status=401, payload={"detail": "Invalid API key"})
        mocked.post(EXECUTE, payload=execution("completed", "never reached"))
        with pytest.raises(TranslatorError) as caught:
            await backend.complete(request())
    assert len(calls(mocked, "POST", EXECUTE)) == 1
    # The agent server refused the translator's key, not the client's: a 502.
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_authentication_failed")
    assert "refused the translator's credentials" in error["message"]
    assert "k-1" not in error["message"]


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_execute_is_not_retried(
    context: BackendContext, status: int
) -> None:
    """The agent server may have accepted the job behind the gateway: no second job."""
    with aioresponses() as mocked:
        mocked.post(EXECUTE, status=status, payload={"detail": "gateway"})
        mocked.post(EXECUTE, payload=execution("completed", "a duplicate job"))
        with pytest.raises(TranslatorError) as caught:
            await make(context).complete(request())
    assert caught.value.status == status
    assert len(calls(mocked, "POST", EXECUTE)) == 1


async def test_a_gateway_error_on_a_poll_is_retried_by_the_client(
    context: BackendContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    retried: list[float] = []

    async def pause(delay: float) -> None:
        retried.append(delay)

    monkeypatch.setattr(http_module, "_sleep", pause)
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        mocked.get(poll_url("exec-1"), status=502, payload={"detail": "bad gateway"})
        mocked.get(poll_url("exec-1"), status=504, payload={"detail": "gateway timeout"})
        mocked.get(poll_url("exec-1"), payload=execution("completed", "Done."))
        response = await make(context).complete(request())
    assert response.choices[0].message.content == "Done."
    # One poll of the backend's, in three attempts of the HTTP client's.
    assert len(calls(mocked, "GET", poll_url("exec-1"))) == 3
    assert len(retried) == 2


async def test_refused_credentials_on_a_poll_end_the_wait(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        mocked.get(poll_url("exec-1"), status=403, payload={"detail": "Forbidden"}, repeat=True)
        with pytest.raises(TranslatorError) as caught:
            await make(context, deadline=30).complete(request())
    assert caught.value.to_openai()["error"]["code"] == "upstream_authentication_failed"
    assert len(calls(mocked, "GET", poll_url("exec-1"))) == 1


async def test_a_failed_execution_carries_the_agents_message(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        mocked.get(poll_url("exec-1"), payload=execution("failed", {"error": "Out of credits."}))
        with pytest.raises(TranslatorError) as caught:
            await make(context).complete(request())
    assert caught.value.status == 502
    assert caught.value.message.endswith("exec-1 failed: Out of credits.")


async def test_an_unknown_final_status_is_a_failure(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("cancelled", message="Cancelled by the owner."))
        with pytest.raises(TranslatorError) as caught:
            await make(context).complete(request())
    assert "ended with status 'cancelled': Cancelled by the owner." in caught.value.message


async def test_a_vanished_execution_and_a_garbled_one_are_errors(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("pending"))
        mocked.get(poll_url("exec-1"), status=404, payload={"detail": "Execution not found"})
        with pytest.raises(TranslatorError, match="Execution not found"):
            await make(context).complete(request())
    with aioresponses() as mocked:
        mocked.post(EXECUTE, body=b"<html>gateway</html>", content_type="text/html")
        with pytest.raises(MalformedUpstreamError):
            await make(context).complete(request())


async def test_a_failing_poll_does_not_end_a_running_job(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        for _ in range(3):  # the client's own retries are used up once
            mocked.get(poll_url("exec-1"), status=503, payload={"detail": "restarting"})
        mocked.get(poll_url("exec-1"), payload=execution("completed", "Still here."))
        response = await make(context).complete(request())
    assert response.choices[0].message.content == "Still here."
    assert len(calls(mocked, "GET", poll_url("exec-1"))) == 4


async def test_a_deadline_passed_while_polls_fail_says_why(context: BackendContext) -> None:
    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        mocked.get(poll_url("exec-1"), status=502, payload={"detail": "bad gateway"}, repeat=True)
        with pytest.raises(TranslatorError) as caught:
            await make(context, deadline=0.1).complete(request())
    assert caught.value.status == 504
    assert "last status: running; the last poll failed:" in caught.value.message
    assert "bad gateway" in caught.value.message


async def test_the_deadline_covers_a_poll_that_hangs(context: BackendContext) -> None:
    async def hang(url: URL, **kwargs: Any) -> CallbackResult:
        await asyncio.sleep(5)
        return CallbackResult(payload=execution("completed", "late"))

    with aioresponses() as mocked:
        mocked.post(EXECUTE, payload=execution("running"))
        mocked.get(poll_url("exec-1"), callback=hang)
        with pytest.raises(TranslatorError) as caught:
            await make(context, deadline=0.1).complete(request())
    assert caught.value.status == 504
    assert "(last status: running)" in caught.value.message


async def test_a_file_is_uploaded_as_multipart_then_named_by_the_agents_id(
    context: BackendContext,
) -> None:
    assert isinstance(context.files, MemoryFileStore)
    ours = await context.files.put(
        'my "scan".pdf', "application/pdf", b"%PDF-1.7", "assistants", scope=None
    )
    part = {"type": "file", "file": {"file_id": ours.id}}
    backend = make(context)
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": "af-1", "bytes": 8, "purpose": "assistants"})
        mocked.post(EXECUTE, payload=execution("completed", "A scan."), repeat=True)
        await backend.complete(request(part))
        await backend.complete(request(part))
    (upload,) = calls(mocked, "POST", FILES)
    assert upload.kwargs["headers"]["Authorization"] == "Bearer k-1"
    content_type = upload.kwargs["headers"]["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    data: bytes = upload.kwargs["data"]
    assert b'name="file"; filename="my %22scan%22.pdf"' in data
    assert b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\r\n" in data
    for call in calls(mocked, "POST", EXECUTE):
        inputs = msgspec.json.decode(call.kwargs["data"])["inputs"]
        assert inputs == {"file_1": {"type": "input_file", "file_id": "af-1"}}


async def test_a_failed_upload_is_an_error_and_is_tried_again_next_time(
    context: BackendContext,
) -> None:
    part = await stored_file(context)
    backend = make(context)
    with aioresponses() as mocked:
        mocked.post(FILES, status=400, payload={"detail": [{"msg": "Unsupported file type"}]})
        with pytest.raises(TranslatorError, match="Unsupported file type"):
            await backend.complete(request(part))
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": "af-2"})
        mocked.post(EXECUTE, payload=execution("completed", "ok"))
        await backend.complete(request(part))
    assert len(calls(mocked, "POST", FILES)) == 1
    sent = msgspec.json.decode(calls(mocked, "POST", EXECUTE)[0].kwargs["data"])
    assert sent["inputs"]["file_1"]["file_id"] == "af-2"


async def test_an_upload_answer_without_an_id_is_malformed(context: BackendContext) -> None:
    assert isinstance(context.files, MemoryFileStore)
    ours = await context.files.put("a.png", "image/png", b"png", "assistants", scope=None)
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": None})
        with pytest.raises(MalformedUpstreamError, match="has no id"):
            await make(context).complete(request({"type": "input_file", "file_id": ours.id}))


async def test_a_file_the_agent_forgot_is_uploaded_again_once(context: BackendContext) -> None:
    part = await stored_file(context)
    backend = make(context)
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": "af-1"})
        mocked.post(EXECUTE, payload=execution("completed", "first"))
        await backend.complete(request(part))
    with aioresponses() as mocked:
        mocked.post(EXECUTE, status=404, payload={"detail": "File af-1 not found"})
        mocked.post(FILES, status=201, payload={"id": "af-2"})
        mocked.post(EXECUTE, payload=execution("completed", "again"))
        response = await backend.complete(request(part))
    assert response.choices[0].message.content == "again"
    assert len(calls(mocked, "POST", FILES)) == 1
    first, second = (
        msgspec.json.decode(c.kwargs["data"])["inputs"]["file_1"]["file_id"]
        for c in calls(mocked, "POST", EXECUTE)
    )
    assert (first, second) == ("af-1", "af-2")
    native = backend.encode_request(request(part))
    assert msgspec.json.decode(native)["inputs"]["file_1"]["file_id"] == "af-2"


async def test_a_file_forgotten_twice_is_an_error_not_a_loop(context: BackendContext) -> None:
    part = await stored_file(context)
    backend = make(context)
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": "af-1"})
        mocked.post(FILES, status=201, payload={"id": "af-2"})
        mocked.post(EXECUTE, status=404, payload={"detail": "File af-1 not found"})
        mocked.post(EXECUTE, status=404, payload={"detail": "File af-2 not found"})
        mocked.post(EXECUTE, payload=execution("completed", "never reached"))
        with pytest.raises(TranslatorError) as caught:
            await backend.complete(request(part))
    assert caught.value.status == 404
    assert caught.value.message.endswith("answered 404: File af-2 not found")
    assert len(calls(mocked, "POST", FILES)) == 2
    assert len(calls(mocked, "POST", EXECUTE)) == 2


@pytest.mark.parametrize(
    "detail",
    ["Agent 'document.x' not found", "File af-10 not found", "Model not found"],
)
async def test_a_404_that_names_no_cached_file_uploads_nothing(
    context: BackendContext, detail: str
) -> None:
    part = await stored_file(context)
    with aioresponses() as mocked:
        mocked.post(FILES, status=201, payload={"id": "af-1"})
        mocked.post(EXECUTE, status=404, payload={"detail": detail}, repeat=True)
        with pytest.raises(TranslatorError, match=detail):
            await make(context).complete(request(part))
    assert len(calls(mocked, "POST", FILES)) == 1
    assert len(calls(mocked, "POST", EXECUTE)) == 1
