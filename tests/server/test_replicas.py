"""Two ``translator serve`` processes sharing one Redis, as two replicas behind a load balancer.

The backends are loopback servers speaking their real protocols: an
OpenAI-compatible upstream that records what it is sent, and the fake VLM
agent server, which counts uploads. The client is the official OpenAI SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp.test_utils import TestServer

from benchmarks.redis_server import RedisServer
from tests.serve_process import RecordingUpstream, Served, start_serve, stop
from tests.vlm_agent_server import FakeAgentServer

CONFIG = """
[backends.up]
plugin = "openai-compatible"
base_url = "{upstream}"
api_key = "upstream-key"

[backends.agent]
plugin = "vlm-agent"
base_url = "{agent}"
api_key = "agent-key"
options = {{ poll_interval = 0.01 }}

[[routes]]
model = "up-*"
backend = "up"

[[routes]]
model = "agent-*"
backend = "agent"

[stores]
sessions = "{redis}"
files = "{redis}"
prefix = "{prefix}"
"""


@pytest.fixture
def upstream() -> RecordingUpstream:
    return RecordingUpstream()


@pytest.fixture
def agent() -> FakeAgentServer:
    return FakeAgentServer(polls=1)


@pytest.fixture
async def replicas(
    upstream: RecordingUpstream,
    agent: FakeAgentServer,
    redis_server: RedisServer,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[list[openai.AsyncOpenAI]]:
    """Two servers (A, B) on two ports, one Redis; an SDK client for each."""
    servers = [
        TestServer(upstream.app(), host="127.0.0.1"),
        TestServer(agent.app(), host="127.0.0.1"),
    ]
    for server in servers:
        await server.start_server()
    config = tmp_path / "replica.toml"
    config.write_text(
        CONFIG.format(
            upstream=servers[0].make_url("/v1"),
            agent=servers[1].make_url("/v1"),
            redis=redis_server.url,
            prefix=redis_prefix,
        )
    )
    started: list[Served] = []
    clients: list[openai.AsyncOpenAI] = []
    try:
        homes = [tmp_path / "a", tmp_path / "b"]  # no local state in common: only Redis
        for home in homes:
            home.mkdir()
        started += await asyncio.gather(
            *(
                asyncio.to_thread(
                    start_serve, "--config", str(config), cwd=home, env={"XDG_DATA_HOME": str(home)}
                )
                for home in homes
            )
        )
        clients += [
            openai.AsyncOpenAI(base_url=served.base, api_key="-", max_retries=0)
            for served in started
        ]
        yield clients
    finally:
        for client in clients:
            await client.close()
        for served in started:
            assert await asyncio.to_thread(stop, served) == 0
        for server in servers:
            await server.close()


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_a_session_started_on_one_replica_continues_on_the_other(
    replicas: list[openai.AsyncOpenAI], upstream: RecordingUpstream
) -> None:
    a, b = replicas
    session = {"session_id": "trip"}
    await a.chat.completions.create(
        model="up-1", messages=say("my name is Ada"), extra_body=session
    )
    reply = await b.chat.completions.create(
        model="up-1", messages=say("what is my name?"), extra_body=session
    )
    assert reply.choices[0].message.content == "re: what is my name?"
    assert upstream.contents() == ["my name is Ada", "re: my name is Ada", "what is my name?"]
    await a.chat.completions.create(model="up-1", messages=say("thanks"), extra_body=session)
    assert len(upstream.contents()) == 5


async def test_concurrent_turns_on_both_replicas_are_all_kept(
    replicas: list[openai.AsyncOpenAI], upstream: RecordingUpstream
) -> None:
    session = {"session_id": "busy"}
    await asyncio.gather(
        *(
            replicas[n % 2].chat.completions.create(
                model="up-1", messages=say(f"turn {n}"), extra_body=session
            )
            for n in range(20)
        )
    )
    await replicas[0].chat.completions.create(
        model="up-1", messages=say("last"), extra_body=session
    )
    history = upstream.contents()
    assert history[-1] == "last"
    questions = [m for m in history if m.startswith("turn ")]
    assert sorted(questions) == sorted(f"turn {n}" for n in range(20))
    answers = [m for m in history if m.startswith("re: turn ")]
    # Each turn whole: every question is followed by its own answer.
    assert len(answers) == 20
    for i, message in enumerate(history[:-1]):
        if message.startswith("turn "):
            assert history[i + 1] == f"re: {message}"


async def test_a_file_uploaded_on_one_replica_is_used_listed_and_deleted_on_the_other(
    replicas: list[openai.AsyncOpenAI], agent: FakeAgentServer
) -> None:
    a, b = replicas
    uploaded = await a.files.create(
        file=("invoice.pdf", b"%PDF-1.4 total 42"), purpose="assistants"
    )
    content = [
        {"type": "text", "text": "What is the total?"},
        {"type": "input_file", "file_id": uploaded.id},
    ]
    # Both replicas use the file at once: the agent gets it uploaded once.
    replies = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="agent-1",
                messages=[{"role": "user", "content": content}],  # type: ignore[list-item, misc]
            )
            for client in (a, b, a, b)
        )
    )
    assert all("Seen 1 input(s)" in (r.choices[0].message.content or "") for r in replies)
    assert [u.data for u in agent.uploads] == [b"%PDF-1.4 total 42"]

    assert [f.id for f in (await b.files.list()).data] == [uploaded.id]
    assert (await b.files.retrieve(uploaded.id)).filename == "invoice.pdf"
    assert (await b.files.content(uploaded.id)).read() == b"%PDF-1.4 total 42"
    assert (await b.files.delete(uploaded.id)).deleted is True
    with pytest.raises(openai.NotFoundError):
        await a.files.retrieve(uploaded.id)
    assert (await a.files.list()).data == []


async def test_a_file_the_agent_forgot_is_uploaded_again_once_for_both_replicas(
    replicas: list[openai.AsyncOpenAI], agent: FakeAgentServer
) -> None:
    a, b = replicas
    uploaded = await a.files.create(file=("a.png", b"\x89PNG"), purpose="vision")
    messages = [
        {"role": "user", "content": [{"type": "input_file", "file_id": uploaded.id}]},
    ]
    await a.chat.completions.create(model="agent-1", messages=messages)  # type: ignore[arg-type]
    await b.chat.completions.create(model="agent-1", messages=messages)  # type: ignore[arg-type]
    assert len(agent.uploads) == 1
    agent.forget(agent.uploads[0].id)  # the agent server let it expire
    await b.chat.completions.create(model="agent-1", messages=messages)  # type: ignore[arg-type]
    await a.chat.completions.create(model="agent-1", messages=messages)  # type: ignore[arg-type]
    assert len(agent.uploads) == 2
