"""The vlm-agent backend against a loopback agent server that runs jobs (execute + poll)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import openai.types.chat
import pytest
import translator_plugins.vlm_agent
from aiohttp.test_utils import TestServer

from tests.vlm_agent_server import AgentJob, FakeAgentServer
from translator._backend import BackendContext, BackendSettings
from translator._compat import Treatment
from translator._core import Translator
from translator._model import Usage
from translator._openai import encode_response
from translator._plugins import get_plugin_manager
from translator.errors import NeedsIOError, TranslatorError, UnsupportedFieldError
from translator.stores import MemoryFileStore

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGAAAAAEAAH2"
    "FzhVAAAAAElFTkSuQmCC"
)
FAST = {"poll_interval": 0.005, "poll_max_interval": 0.02, "retry_backoff": 0.001}

Make = Callable[..., Translator]


@pytest.fixture
async def agent() -> AsyncIterator[tuple[FakeAgentServer, TestServer]]:
    fake = FakeAgentServer()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()


@pytest.fixture
async def make(agent: tuple[FakeAgentServer, TestServer]) -> AsyncIterator[Make]:
    _, server = agent
    made: list[Translator] = []

    def build(
        *,
        files: Any = None,
        api_key: str = "agent-key",
        matrix: dict[str, Treatment] | None = None,
        **options: Any,
    ) -> Translator:
        settings = BackendSettings(
            plugin="vlm-agent",
            base_url=str(server.make_url("/v1")),
            api_key=api_key,
            matrix=matrix or {},
            options={**FAST, **options},
        )
        pm = get_plugin_manager(
            builtins=False, entry_points=False, plugins=[translator_plugins.vlm_agent]
        )
        translator = Translator.from_settings(
            {"vlm-agent": settings}, plugin_manager=pm, context=BackendContext(files=files)
        )
        made.append(translator)
        return translator

    yield build
    for translator in made:
        await translator.aclose()


def body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "vlm-agent-1", **fields})


def as_openai(response: Any) -> openai.types.chat.ChatCompletion:
    """The response as the OpenAI SDK reads it."""
    return openai.types.chat.ChatCompletion.model_validate_json(encode_response(response))


# -- the spec's three examples --------------------------------------------------------


async def test_spec_example_chat_completion_with_an_image_and_a_session(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.answer = lambda job: {"content": "A single white pixel."}
    translator = make(models={"vlm-agent-1": "vlmrun-orion-1:auto"})
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What's in this image?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}},
            ],
        },
    ]
    done = await translator.complete(
        body(messages=messages, temperature=0, session_id="sess-42"), "vlm-agent"
    )
    (sent,) = fake.executed
    assert sent == {
        "model": "vlmrun-orion-1:auto",
        "name": None,
        "batch": True,
        "inputs": {"image_1": {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}}},
        "config": {
            "prompt": "You are a helpful assistant.\n\nWhat's in this image?\n[image_1]",
            "temperature": 0.0,
        },
        "metadata": {
            "environment": "prod",
            "session_id": "sess-42",
            "allow_training": True,
            "allow_retention": True,
            "allow_logging": True,
            "extra": None,
        },
    }
    assert fake.hits["GET /v1/agent/executions/exec-1"] == fake.polls
    completion = as_openai(done.response)
    assert completion.choices[0].message.content == "A single white pixel."
    assert completion.model == "vlm-agent-1"
    assert done.response.session_id == "sess-42"
    usage = done.response.usage
    assert (usage.credits_used, usage.steps, usage.duration_seconds) == (2, 3, 4)
    assert usage.estimated is True
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert done.report.dropped == []


async def test_spec_example_extra_body_request_metadata(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    vlmrun = {"metadata": {"environment": "dev", "allow_retention": False}}
    done = await make().complete(
        body(messages=[{"role": "user", "content": "Hi"}], temperature=0, vlmrun=vlmrun),
        "vlm-agent",
    )
    assert fake.executed[0]["metadata"] == {
        "environment": "dev",
        "session_id": None,
        "allow_training": True,
        "allow_retention": False,
        "allow_logging": True,
        "extra": None,
    }
    assert done.response.choices[0].message.content == "Seen 0 input(s). You said: Hi"


async def test_spec_example_domain_and_metadata_with_a_session(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    vlmrun = {
        "domain": "document.invoice",
        "metadata": {"environment": "dev", "session_id": "s-7", "allow_training": False},
    }
    done = await make().complete(
        body(
            model="vlm-1",
            messages=[{"role": "user", "content": "Read the invoice"}],
            temperature=0,
            vlmrun=vlmrun,
        ),
        "vlm-agent",
    )
    (sent,) = fake.executed
    assert sent["name"] == "document.invoice"
    assert sent["model"] == "vlmrun-orion-1:auto"
    assert sent["metadata"]["session_id"] == "s-7"
    assert sent["metadata"]["allow_training"] is False
    assert done.response.session_id == "s-7"
    assert as_openai(done.response).model == "vlm-1"


# -- files -------------------------------------------------------------------------------


def file_message(*file_ids: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "Describe"}]
    parts += [{"type": "input_file", "file_id": f} for f in file_ids]
    return [{"role": "user", "content": parts}]


async def test_an_uploaded_file_reaches_the_agent_by_its_agent_id_uploaded_once(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    store = MemoryFileStore()
    ours = await store.put("cat.png", "image/png", b"\x89PNG-cat", "assistants", scope=None)
    translator = make(files=store)
    await translator.complete(body(messages=file_message(ours.id, ours.id)), "vlm-agent")
    await translator.complete(body(messages=file_message(ours.id)), "vlm-agent")
    assert len(fake.uploads) == 1
    upload = fake.uploads[0]
    assert (upload.filename, upload.content_type, upload.data) == (
        "cat.png",
        "image/png",
        b"\x89PNG-cat",
    )
    first, second = fake.executed
    agent_file = {"type": "input_file", "file_id": upload.id}
    assert first["inputs"] == {"file_1": agent_file, "file_2": agent_file}
    assert second["inputs"] == {"file_1": agent_file}
    # Pure translation now knows the agent's id too.
    native = translator.translate_request(body(messages=file_message(ours.id)), "vlm-agent")
    assert msgspec.json.decode(native)["inputs"] == {"file_1": agent_file}


async def test_one_callers_uploaded_file_is_never_resolved_for_another(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    store = MemoryFileStore()
    ours = await store.put("cat.png", "image/png", b"\x89PNG-cat", "assistants", scope="alice")
    translator = make(files=store)
    await translator.complete(body(messages=file_message(ours.id)), "vlm-agent", scope="alice")
    with pytest.raises(TranslatorError) as refused:
        # Bob knows the id but not the file: it goes to the agent as the agent's
        # own id, never as Alice's upload, and the agent does not know it.
        await translator.complete(body(messages=file_message(ours.id)), "vlm-agent", scope="bob")
    assert refused.value.status == 400
    assert ours.id in refused.value.message
    assert len(fake.uploads) == 1
    (alice,) = fake.executed
    assert alice["inputs"] == {"file_1": {"type": "input_file", "file_id": fake.uploads[0].id}}


async def test_another_callers_file_is_not_read_for_a_caller_who_names_it_first(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    """Nothing cached yet: Bob's request reads the store in Bob's scope, finds
    nothing, and so nothing of Alice's is uploaded; Alice's own request, streamed,
    then uploads it."""
    fake, _ = agent
    store = MemoryFileStore()
    ours = await store.put("cat.png", "image/png", b"\x89PNG-cat", "assistants", scope="alice")
    translator = make(files=store, matrix={"stream": Treatment.EMULATED})

    async def streamed(scope: str) -> str:
        request = body(messages=file_message(ours.id), stream=True)
        stream = await translator.stream(request, "vlm-agent", scope=scope)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    with pytest.raises(TranslatorError) as refused:
        await streamed("bob")
    assert refused.value.status == 400
    assert fake.uploads == []
    assert fake.executed == []

    assert await streamed("alice") == "Seen 1 input(s). You said: [file_1]"
    assert [u.data for u in fake.uploads] == [b"\x89PNG-cat"]


async def test_concurrent_requests_share_one_upload(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    store = MemoryFileStore()
    ours = await store.put("clip.mp4", "video/mp4", b"video-bytes", "assistants", scope=None)
    translator = make(files=store)
    await asyncio.gather(
        *(translator.complete(body(messages=file_message(ours.id)), "vlm-agent") for _ in range(4))
    )
    assert len(fake.uploads) == 1
    assert fake.hits["POST /v1/files"] == 1
    assert {job["inputs"]["file_1"]["file_id"] for job in fake.executed} == {fake.uploads[0].id}


async def test_an_id_we_do_not_know_is_passed_through_as_the_agents_own(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.known_files.add("agent-owned-7")
    translator = make(files=MemoryFileStore())
    await translator.complete(body(messages=file_message("agent-owned-7")), "vlm-agent")
    assert fake.uploads == []
    assert fake.executed[0]["inputs"]["file_1"] == {
        "type": "input_file",
        "file_id": "agent-owned-7",
    }


async def test_an_id_neither_side_knows_is_the_agents_400(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    missing = "file-" + "0" * 24
    with pytest.raises(TranslatorError) as caught:
        await make(files=MemoryFileStore()).complete(
            body(messages=file_message(missing)), "vlm-agent"
        )
    assert caught.value.status == 400
    assert f"File not found: {missing}" in caught.value.message
    assert fake.uploads == []


async def test_a_file_the_agent_server_forgot_is_uploaded_again(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    store = MemoryFileStore()
    ours = await store.put("cat.png", "image/png", b"\x89PNG-cat", "assistants", scope=None)
    translator = make(files=store)
    await translator.complete(body(messages=file_message(ours.id)), "vlm-agent")
    first_upload = fake.uploads[0].id
    fake.forget(first_upload)
    done = await translator.complete(body(messages=file_message(ours.id)), "vlm-agent")
    assert done.response.choices[0].message.content == "Seen 1 input(s). You said: [file_1]"
    assert [u.data for u in fake.uploads] == [b"\x89PNG-cat", b"\x89PNG-cat"]
    second_upload = fake.uploads[1].id
    assert second_upload != first_upload
    # Two accepted jobs, the refused execute in between created none.
    assert fake.hits["POST /v1/agent/execute"] == 3
    assert [job["inputs"]["file_1"]["file_id"] for job in fake.executed] == [
        first_upload,
        second_upload,
    ]
    await translator.complete(body(messages=file_message(ours.id)), "vlm-agent")
    assert len(fake.uploads) == 2


async def test_pure_translation_of_a_file_not_yet_uploaded_needs_io(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    store = MemoryFileStore()
    ours = await store.put("a.pdf", "application/pdf", b"%PDF", "assistants", scope=None)
    with pytest.raises(NeedsIOError):
        make(files=store).translate_request(body(messages=file_message(ours.id)), "vlm-agent")


# -- structured output, failures, deadlines -----------------------------------------------


async def test_a_json_schema_request_answers_with_the_agents_json(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    schema = {
        "type": "object",
        "properties": {"invoice_id": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_id", "total"],
    }

    def extract(job: AgentJob) -> Any:
        assert job.body["config"]["json_schema"] == schema
        return {"invoice_id": "INV-7", "total": 12.5}

    fake.answer = extract
    response_format = {"type": "json_schema", "json_schema": {"name": "invoice", "schema": schema}}
    done = await make().complete(
        body(
            messages=[{"role": "user", "content": "Extract the invoice."}],
            response_format=response_format,
        ),
        "vlm-agent",
    )
    content = as_openai(done.response).choices[0].message.content or ""
    assert msgspec.json.decode(content) == {"invoice_id": "INV-7", "total": 12.5}


async def test_a_failed_execution_is_a_502_with_the_agents_message(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.fail_with = "The video could not be decoded."
    with pytest.raises(TranslatorError) as caught:
        await make().complete(body(messages=[{"role": "user", "content": "Hi"}]), "vlm-agent")
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert error["type"] == "upstream_error"
    assert error["code"] == "agent_execution_failed"
    assert error["message"].endswith("exec-1 failed: The video could not be decoded.")
    assert fake.jobs["exec-1"].polls == fake.polls


async def test_a_job_that_never_finishes_hits_the_deadline(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.never_finish = True
    with pytest.raises(TranslatorError) as caught:
        await make(deadline=0.15).complete(
            body(messages=[{"role": "user", "content": "Hi"}]), "vlm-agent"
        )
    assert caught.value.status == 504
    assert caught.value.to_openai()["error"]["code"] == "upstream_timeout"
    assert "exec-1 did not finish within 0.15s (last status: running)" in caught.value.message
    assert fake.jobs["exec-1"].polls > 2


async def test_503_on_execute_is_retried(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.execute_statuses = [503]
    done = await make().complete(body(messages=[{"role": "user", "content": "Hi"}]), "vlm-agent")
    assert fake.hits["POST /v1/agent/execute"] == 2
    assert done.response.choices[0].message.content == "Seen 0 input(s). You said: Hi"


async def test_401_on_execute_is_not_retried(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    with pytest.raises(TranslatorError) as caught:
        await make(api_key="sk-wrong-7f3a").complete(
            body(messages=[{"role": "user", "content": "Hi"}]), "vlm-agent"
        )
    assert fake.hits["POST /v1/agent/execute"] == 1
    # The translator's own key was refused, which the client cannot fix: a 502.
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_authentication_failed")
    assert "7f3a" not in error["message"]


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_execute_is_not_retried(
    agent: tuple[FakeAgentServer, TestServer], make: Make, status: int
) -> None:
    fake, _ = agent
    fake.execute_statuses = [status]
    with pytest.raises(TranslatorError) as caught:
        await make().complete(body(messages=[{"role": "user", "content": "Hi"}]), "vlm-agent")
    assert caught.value.status == status
    assert fake.hits["POST /v1/agent/execute"] == 1
    assert fake.jobs == {}


# -- streaming ----------------------------------------------------------------------------


async def test_stream_is_refused_by_default(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    with pytest.raises(UnsupportedFieldError) as caught:
        await make().stream(
            body(messages=[{"role": "user", "content": "Hi"}], stream=True), "vlm-agent"
        )
    assert caught.value.param == "stream"
    assert fake.jobs == {}


async def test_stream_can_be_emulated_by_configuration(
    agent: tuple[FakeAgentServer, TestServer], make: Make
) -> None:
    fake, _ = agent
    fake.answer = lambda job: "Three little words"
    translator = make(matrix={"stream": Treatment.EMULATED})
    stream = await translator.stream(
        body(
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
            session_id="s-1",
        ),
        "vlm-agent",
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Three little words"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    assert chunks[-1].choices == []
    last_usage = chunks[-1].usage
    assert isinstance(last_usage, Usage)
    assert last_usage.credits_used == 1
    assert {c.session_id for c in chunks} == {"s-1"}
    assert stream.report.emulated == ["stream"]
