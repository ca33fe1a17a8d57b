"""The official OpenAI SDK, sync and async, against the real server on loopback.

The server runs on a real socket (port 0); the SDK is pointed at
``.../v1/openai`` and used exactly as the spec's users use it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from translator_plugins.echo import MATRIX as ECHO_MATRIX

from tests.sdk_client import SDK
from translator import hookimpl
from translator._backend import (
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    caller_scope,
)
from translator._model import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FilePart,
    InputFilePart,
    ResponseMessage,
    Usage,
)
from translator._openai import new_completion_id, now
from translator._plugins import get_plugin_manager
from translator._streaming import chunks_from_response
from translator.config import parse_config
from translator.server import create_app, serving

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def encode_image(image: bytes) -> str:
    """The spec's helper: an image as a data URI."""
    return "data:image/png;base64," + base64.b64encode(image).decode()


class Recorder(Backend):
    """Answers with what it received: the number of messages and each file's bytes."""

    def __init__(self, name: str, context: BackendContext) -> None:
        self.name = name
        self.matrix = ECHO_MATRIX
        self.context = context
        self.seen: list[ChatRequest] = []

    async def _describe(self, request: ChatRequest) -> str:
        files: list[str] = []
        for message in request.messages:
            content = getattr(message, "content", None)
            for part in content if isinstance(content, list) else ():
                file_id = part.file_id if isinstance(part, InputFilePart) else None
                if isinstance(part, FilePart) and isinstance(part.file.file_id, str):
                    file_id = part.file.file_id
                if file_id is not None:
                    assert self.context.files is not None
                    found = await self.context.files.read(file_id, scope=caller_scope(request))
                    files.append("missing" if found is None else f"{found[0]}={found[2].decode()}")
        return f"{len(request.messages)} messages; files: {', '.join(files) or 'none'}"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        message = ResponseMessage(content=await self._describe(request))
        return ChatResponse(
            new_completion_id(), now(), request.model, [Choice(0, message)], Usage.of(7, 5)
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        response = await self.complete(request)
        for chunk in chunks_from_response(response, include_usage=True):
            yield chunk


class RecorderPlugin:
    def __init__(self) -> None:
        self.built: list[Recorder] = []

    @hookimpl
    def register_backends(self, register: Callable[[BackendFactory], None]) -> None:
        plugin = self

        class Factory:
            plugin_name = "recorder"
            description = "answers with what it received"

            def create(
                self, name: str, settings: BackendSettings, context: BackendContext
            ) -> Backend:
                backend = Recorder(name, context)
                plugin.built.append(backend)
                return backend

        register(Factory())


CONFIG = """
default_backend = "echo"

[backends.echo]
plugin = "echo"
matrix = {max_tokens = "ignored"}

[backends.recorder]
plugin = "recorder"

[[routes]]
model = "recorder-*"
backend = "recorder"

[[routes]]
model = "vlm-agent-1"
backend = "echo"

[[routes]]
model = "recorder-1"
backend = "recorder"
"""


@pytest.fixture
def recorder_plugin() -> RecorderPlugin:
    return RecorderPlugin()


@pytest.fixture
async def base_url(recorder_plugin: RecorderPlugin) -> AsyncIterator[str]:
    pm = get_plugin_manager(entry_points=False, plugins=[recorder_plugin])
    app = create_app(parse_config(CONFIG), plugin_manager=pm)
    async with serving(app) as root:
        yield f"{root}/v1/openai"


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, base_url: str) -> AsyncIterator[SDK]:
    client = SDK(request.param, base_url)
    yield client
    await client.aclose()


MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": encode_image(PNG), "detail": "auto"}},
        ],
    },
]


def assert_usage(usage: Any) -> None:
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# -- the spec's examples, verbatim ------------------------------------------------------


async def test_spec_image_by_data_uri_with_session_id(sdk: SDK) -> None:
    chat_completion = await sdk.chat(
        model="vlm-agent-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={"session_id": "<session id>"},  # optional session id for persistence
    )
    assert chat_completion.choices[0].message.content == "What's in this image?\nReceived: 1 image."
    assert chat_completion.model == "vlm-agent-1"
    assert (chat_completion.model_extra or {}).get("session_id") == "<session id>"
    assert_usage(chat_completion.usage)


async def test_spec_extra_body_vlmrun_metadata(sdk: SDK) -> None:
    chat_completion = await sdk.chat(
        model="vlm-agent-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={
            "vlmrun": {
                "metadata": {  # optional dictionary of request metadata
                    "environment": "dev",
                    "allow_retention": False,
                },
            }
        },
    )
    assert chat_completion.choices[0].message.content
    assert_usage(chat_completion.usage)


async def test_spec_request_metadata_with_domain(sdk: SDK) -> None:
    chat_completion = await sdk.chat(
        model="vlm-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={
            "vlmrun": {
                "domain": "...",
                "metadata": {
                    "environment": "dev",  # "dev", "staging", "prod"
                    "session_id": "...",  # a string identifier for the session, non-unique
                    "allow_training": False,  # if true, the request may be used for training
                },
            }
        },
    )
    assert chat_completion.choices[0].message.content
    assert_usage(chat_completion.usage)


# -- streaming ----------------------------------------------------------------------------


async def test_stream_read_to_the_end_with_usage(sdk: SDK) -> None:
    chunks = await sdk.stream(
        model="vlm-agent-1",
        messages=[{"role": "user", "content": "Tell me about this stream"}],
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Tell me about this stream"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == []
    assert_usage(chunks[-1].usage)


# -- the compat matrix through the SDK ----------------------------------------------------


async def test_max_tokens_is_accepted_and_reported_ignored(sdk: SDK) -> None:
    raw = await sdk.call(
        "chat.completions.with_raw_response.create",
        model="vlm-agent-1",
        messages=[{"role": "user", "content": "A long answer, please"}],
        max_tokens=2,
    )
    assert raw.headers["x-translator-ignored"] == "max_tokens"
    completion = raw.parse()
    assert completion.choices[0].message.content == "A long answer, please"  # not cut
    assert_usage(completion.usage)


async def test_unknown_model_is_a_not_found_error() -> None:
    # Two backends, one route and no default: only the routed name is a model.
    strict = create_app(
        parse_config(
            '[backends.a]\nplugin = "echo"\n[backends.b]\nplugin = "echo"\n'
            '[[routes]]\nmodel = "m"\nbackend = "b"\n'
        )
    )
    async with serving(strict) as root:
        client = openai.AsyncOpenAI(base_url=f"{root}/v1/openai", api_key="x", max_retries=0)
        answered = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        for model in ("gpt-4o", "b"):  # a backend's own name is no model
            with pytest.raises(openai.NotFoundError) as caught:
                await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}]
                )
            assert caught.value.code == "model_not_found"
            assert caught.value.param == "model"
        await client.close()
    assert answered.choices[0].message.content == "hi"


# -- files, then an input_file part the backend receives ----------------------------------


async def test_files_create_then_input_file_reaches_the_backend(
    sdk: SDK, recorder_plugin: RecorderPlugin
) -> None:
    uploaded = await sdk.call(
        "files.create", file=("notes.txt", b"the quarterly numbers", "text/plain"),
        purpose="assistants",
    )  # fmt: skip
    assert uploaded.id.startswith("file-")
    assert uploaded.bytes == len(b"the quarterly numbers")
    assert uploaded.filename == "notes.txt"
    assert uploaded.purpose == "assistants"
    completion = await sdk.chat(
        model="recorder-1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarise this file"},
                    {"type": "input_file", "file_id": uploaded.id},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == (
        "1 messages; files: notes.txt=the quarterly numbers"
    )
    as_file_part = await sdk.chat(
        model="recorder-1",
        messages=[
            {"role": "user", "content": [{"type": "file", "file": {"file_id": uploaded.id}}]}
        ],
    )
    assert as_file_part.choices[0].message.content == (
        "1 messages; files: notes.txt=the quarterly numbers"
    )


async def test_files_list_retrieve_content_delete(sdk: SDK) -> None:
    first = await sdk.call("files.create", file=("a.txt", b"A"), purpose="assistants")
    second = await sdk.call("files.create", file=("b.jsonl", b"{}\n"), purpose="batch")
    if sdk.kind == "async":
        listed = [f.id async for f in sdk.async_.files.list()]
        batch = [f.id async for f in sdk.async_.files.list(purpose="batch")]
    else:
        listed = await asyncio.to_thread(lambda: [f.id for f in sdk.sync.files.list()])
        batch = await asyncio.to_thread(
            lambda: [f.id for f in sdk.sync.files.list(purpose="batch")]
        )
    assert listed[:2] == [second.id, first.id]  # newest first
    assert batch == [second.id]
    retrieved = await sdk.call("files.retrieve", first.id)
    assert (retrieved.id, retrieved.filename, retrieved.bytes) == (first.id, "a.txt", 1)
    content = await sdk.call("files.content", second.id)
    assert content.content == b"{}\n"
    deleted = await sdk.call("files.delete", first.id)
    assert deleted.deleted is True
    assert deleted.id == first.id
    with pytest.raises(openai.NotFoundError):
        await sdk.call("files.retrieve", first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.call("files.delete", first.id)


async def test_files_list_pages_with_after_and_limit(sdk: SDK) -> None:
    made = [
        (await sdk.call("files.create", file=(f"{i}.txt", b"x"), purpose="user_data")).id
        for i in range(3)
    ]
    page = await sdk.call("files.list", limit=2, order="asc", purpose="user_data")
    assert [f.id for f in page.data] == made[:2]
    assert page.has_more is True
    rest = await sdk.call("files.list", limit=2, order="asc", after=made[1], purpose="user_data")
    assert [f.id for f in rest.data] == made[2:]
    assert rest.has_more is False


# -- sessions ------------------------------------------------------------------------------


async def test_session_continued_across_two_calls(
    sdk: SDK, recorder_plugin: RecorderPlugin
) -> None:
    first = await sdk.chat(
        model="recorder-1",
        messages=[{"role": "user", "content": "My name is Ada."}],
        extra_body={"session_id": f"s-{sdk.kind}"},
    )
    second = await sdk.chat(
        model="recorder-1",
        messages=[{"role": "user", "content": "What is my name?"}],
        extra_body={"session_id": f"s-{sdk.kind}"},
    )
    assert first.choices[0].message.content == "1 messages; files: none"
    # The stateless backend got the first turn and its answer back, then the new turn.
    assert second.choices[0].message.content == "3 messages; files: none"
    seen = recorder_plugin.built[0].seen[-1].messages
    assert [m.content for m in seen] == [  # type: ignore[union-attr]
        "My name is Ada.",
        "1 messages; files: none",
        "What is my name?",
    ]
    assert (second.model_extra or {}).get("session_id") == f"s-{sdk.kind}"


async def test_models_list_through_the_sdk(sdk: SDK) -> None:
    models = await sdk.call("models.list")
    ids = {m.id for m in models.data}
    assert ids == {"vlm-agent-1", "recorder-1"}
    for model in ids:
        completion = await sdk.chat(model=model, messages=[{"role": "user", "content": "hi"}])
        assert completion.model == model


# -- the SDK configured through its environment ------------------------------------------


async def test_the_sdk_configured_only_by_its_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spec's ``OPENAI_API_BASE`` is the pre-1.0 SDK's name; today's reads
    ``OPENAI_BASE_URL`` (and ``OPENAI_API_KEY``)."""
    config = parse_config('[server]\napi_keys = ["sekret"]\n[backends.echo]\nplugin = "echo"')
    async with serving(create_app(config)) as root:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{root}/v1/openai")
        monkeypatch.setenv("OPENAI_API_KEY", "sekret")
        client = openai.AsyncOpenAI(max_retries=0)
        completion = await client.chat.completions.create(
            model="vlm-agent-1", messages=[{"role": "user", "content": "Hello"}]
        )
        await client.close()
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        refused = openai.AsyncOpenAI(max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await refused.models.list()
        await refused.close()
    assert completion.choices[0].message.content == "Hello"
