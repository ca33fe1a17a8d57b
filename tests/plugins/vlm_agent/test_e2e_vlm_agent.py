"""The spec, end to end: the OpenAI SDK -> this server -> the ``vlm-agent`` backend ->
a loopback agent server that runs jobs (execute, then poll) the way VLM Run's does."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.sdk_client import SDK
from tests.vlm_agent_server import FakeAgentServer
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def encode_image(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": encode_image(PNG), "detail": "auto"}},
        ],
    },
]

CONFIG = """
[server]
api_keys = ["<VLMRUN_API_KEY>"]

[backends.agent]
plugin = "vlm-agent"
base_url = "{base_url}"
api_key = "agent-key"
options = {{poll_interval = 0.005, poll_max_interval = 0.02, retry_backoff = 0.001}}

[backends.agent-streaming]
plugin = "vlm-agent"
base_url = "{base_url}"
api_key = "agent-key"
matrix = {{stream = "emulated"}}
options = {{poll_interval = 0.005, poll_max_interval = 0.02, retry_backoff = 0.001}}

[[routes]]
model = "vlm-*"
backend = "agent"

[[routes]]
model = "streaming-*"
backend = "agent-streaming"
"""


@pytest.fixture
def agent() -> FakeAgentServer:
    return FakeAgentServer(polls=3)


@pytest.fixture
async def agent_url(agent: FakeAgentServer) -> AsyncIterator[str]:
    server = TestServer(agent.app(), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/v1"))
    await server.close()


@pytest.fixture
async def base_url(agent_url: str) -> AsyncIterator[str]:
    config = parse_config(CONFIG.format(base_url=agent_url))
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False))
    async with serving(app) as root:
        yield f"{root}/v1/openai"


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, base_url: str) -> AsyncIterator[SDK]:
    client = SDK(request.param, base_url, api_key="<VLMRUN_API_KEY>")
    yield client
    await client.aclose()


def assert_usage(usage: Any) -> None:
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.total_tokens > 0
    assert usage.model_extra["credits_used"] > 0


# -- the spec's three examples, verbatim -------------------------------------------------


async def test_spec_chat_completion_with_an_image(sdk: SDK, agent: FakeAgentServer) -> None:
    chat_completion = await sdk.call(
        "chat.completions.create",
        model="vlm-agent-1",
        messages=messages,
        temperature=0,
        extra_body={"session_id": "<session id>"},  # optional session id for persistence
    )
    assert chat_completion.choices[0].message.content.startswith("Seen 1 input(s).")
    assert_usage(chat_completion.usage)
    sent = agent.executed[-1]
    assert "What's in this image?" in sent["config"]["prompt"]
    assert sent["metadata"]["session_id"] == "<session id>"
    assert [part["image_url"]["url"] for part in sent["inputs"].values()] == [encode_image(PNG)]
    assert (chat_completion.model_extra or {})["session_id"] == "<session id>"


async def test_spec_extra_body(sdk: SDK, agent: FakeAgentServer) -> None:
    chat_completion = await sdk.call(
        "chat.completions.create",
        model="vlm-agent-1",
        messages=messages,
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
    metadata = agent.executed[-1]["metadata"]
    assert metadata["environment"] == "dev"
    assert metadata["allow_retention"] is False
    assert metadata["allow_training"] is True  # the spec's default


async def test_spec_request_metadata(sdk: SDK, agent: FakeAgentServer) -> None:
    chat_completion = await sdk.call(
        "chat.completions.create",
        model="vlm-1",
        messages=messages,
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
    sent = agent.executed[-1]
    assert sent["name"] == "..."
    assert sent["metadata"]["session_id"] == "..."
    assert sent["metadata"]["allow_training"] is False


# -- the spec's compatibility differences ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logprobs", True),
        ("logit_bias", {"1234": 5}),
        # top_logprobs: null asks for nothing and a number needs logprobs: true, itself
        # refused first; its own rejection is checked in test_vlm_agent_translate.py.
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("n", 2),
        ("stop", ["\n"]),
    ],
)
async def test_each_rejected_field_is_a_bad_request_naming_it(
    sdk: SDK, agent: FakeAgentServer, field: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.call(
            "chat.completions.create",
            model="vlm-agent-1",
            messages=messages,
            **{field: value},
        )
    assert caught.value.status_code == 400
    assert caught.value.param == field
    assert caught.value.code in ("unsupported_parameter", "unsupported_value")
    assert field in caught.value.message
    assert agent.executed == []  # refused before the agent was asked anything


async def test_stream_is_rejected_as_a_bad_request(sdk: SDK, agent: FakeAgentServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.stream(model="vlm-agent-1", messages=messages)
    assert caught.value.param == "stream"
    assert agent.executed == []


async def test_max_tokens_is_accepted_and_reported_ignored(
    sdk: SDK, agent: FakeAgentServer
) -> None:
    raw = await sdk.call(
        "chat.completions.with_raw_response.create",
        model="vlm-agent-1",
        messages=messages,
        max_tokens=1,
    )
    assert raw.headers["x-translator-ignored"] == "max_tokens"
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Seen 1 input(s).")
    assert_usage(completion.usage)
    assert "max_tokens" not in agent.executed[-1]


async def test_n_of_one_is_fine(sdk: SDK) -> None:
    completion = await sdk.call(
        "chat.completions.create", model="vlm-agent-1", messages=messages, n=1
    )
    assert len(completion.choices) == 1


async def test_lenient_header_drops_what_strict_mode_rejects(sdk: SDK) -> None:
    raw = await sdk.call(
        "chat.completions.with_raw_response.create",
        model="vlm-agent-1",
        messages=messages,
        logprobs=True,
        max_tokens=5,
        extra_headers={"x-translator-compat": "lenient"},
    )
    dropped = {p.strip() for p in raw.headers["x-translator-ignored"].split(",")}
    assert dropped == {"logprobs", "max_tokens"}
    assert raw.parse().choices[0].message.content


# -- files, sessions, streams ---------------------------------------------------------------


async def test_uploaded_file_reaches_the_agent_as_its_own_file(
    sdk: SDK, agent: FakeAgentServer
) -> None:
    uploaded = await sdk.call(
        "files.create", file=("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"),
        purpose="assistants",
    )  # fmt: skip
    for _ in range(2):
        completion = await sdk.call(
            "chat.completions.create",
            model="vlm-agent-1",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Extract the total"},
                        {"type": "input_file", "file_id": uploaded.id},
                    ],
                }
            ],
        )
        assert completion.choices[0].message.content.startswith("Seen 1 input(s).")
    assert [(u.filename, u.data) for u in agent.uploads] == [("invoice.pdf", b"%PDF-1.4 invoice")]
    inputs = list(agent.executed[-1]["inputs"].values())
    assert inputs == [{"type": "input_file", "file_id": agent.uploads[0].id}]


async def test_session_continued_across_two_calls(sdk: SDK, agent: FakeAgentServer) -> None:
    session = f"session-{sdk.kind}"
    replies = [
        await sdk.call(
            "chat.completions.create",
            model="vlm-agent-1",
            messages=[{"role": "user", "content": text}],
            extra_body={"session_id": session},
        )
        for text in ("Remember the number 7.", "What number did I ask you to remember?")
    ]
    # The agent server keeps the session: both executions name it, each with its own turn.
    assert [job["metadata"]["session_id"] for job in agent.executed] == [session, session]
    assert agent.executed[1]["config"]["prompt"].endswith("What number did I ask you to remember?")
    assert [(r.model_extra or {})["session_id"] for r in replies] == [session, session]


async def test_emulated_stream_read_to_the_end_with_usage(sdk: SDK) -> None:
    chunks = await sdk.stream(
        model="streaming-agent",
        messages=messages,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Seen 1 input(s).")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].choices == []
    assert_usage(chunks[-1].usage)


async def test_wrong_api_key_is_an_authentication_error(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="vlm-agent-1", messages=messages)
    await client.close()


async def test_failed_execution_is_an_openai_error(sdk: SDK, agent: FakeAgentServer) -> None:
    agent.fail_with = "the document could not be read"
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.call("chat.completions.create", model="vlm-agent-1", messages=messages)
    assert "the document could not be read" in caught.value.message
