"""OpenTelemetry spans: the SDK's in-memory exporter behind the real server, the
OpenAI SDK as the client, and a loopback OpenAI-compatible upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.plugins.openai_compat.test_openai_compat import STREAM, Upstream, running_upstream
from tests.serve_async import serve_process
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import create_app, serving

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SECRET = "the-secret-words-4111"

CONFIG = """
default_backend = "up"

[server.observability]
trace_content = {content}

[backends.up]
plugin = "openai-compatible"
base_url = "{base_url}"
api_key = "sk-upstream-credential"
retries = 0
matrix = {{max_tokens = "ignored"}}

[[routes]]
model = "up-*"
backend = "up"
"""


class Traced:
    def __init__(self, root: str, exporter: InMemorySpanExporter, upstream: Upstream) -> None:
        self.sdk = openai.AsyncOpenAI(base_url=f"{root}/v1/openai", api_key="x", max_retries=0)
        self.exporter = exporter
        self.upstream = upstream

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_span(self) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.kind is SpanKind.SERVER]
        return span

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        span_id = parent.context.span_id
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == span_id]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as up:
        yield up


async def traced(upstream: Upstream, *, content: bool) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = parse_config(
        CONFIG.format(base_url=upstream.base_url, content="true" if content else "false")
    )
    app = create_app(
        config, plugin_manager=get_plugin_manager(entry_points=False), tracer_provider=provider
    )
    async with serving(app) as root:
        setup = Traced(root, exporter, upstream)
        yield setup
        await setup.sdk.close()
    provider.shutdown()


@pytest.fixture
async def plain(upstream: Upstream) -> AsyncIterator[Traced]:
    async for setup in traced(upstream, content=False):
        yield setup


@pytest.fixture
async def with_content(upstream: Upstream) -> AsyncIterator[Traced]:
    async for setup in traced(upstream, content=True):
        yield setup


def hello(allow_logging: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "up-1",
        "messages": [{"role": "user", "content": SECRET}],
        "extra_headers": {"traceparent": TRACEPARENT},
    }
    if allow_logging is not None:
        body["extra_body"] = {"vlmrun": {"metadata": {"allow_logging": allow_logging}}}
    return body


async def test_a_chat_is_a_span_tree_continuing_the_callers_trace(plain: Traced) -> None:
    answer = await plain.sdk.chat.completions.create(max_tokens=3, **hello())
    assert answer.choices[0].message.content == "Hi there"

    server = plain.server_span()
    assert server.context is not None
    assert server.parent is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.name == "chat up-*"
    attributes = dict(server.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "up-1"
    assert attributes["gen_ai.response.model"] == "upstream-model"
    assert attributes["gen_ai.system"] == "up"
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert tuple(attributes["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert attributes["http.response.status_code"] == 200

    children = {s.name: s for s in plain.children(server)}
    assert set(children) == {"translator.matrix", "POST"}
    matrix = dict(children["translator.matrix"].attributes or {})
    assert tuple(matrix["translator.matrix.dropped"]) == ("max_tokens",)  # type: ignore[arg-type]
    attempt = children["POST"]
    assert attempt.kind is SpanKind.CLIENT
    call = dict(attempt.attributes or {})
    assert call["url.full"] == f"{plain.upstream.base_url}/chat/completions"
    assert call["http.response.status_code"] == 200
    assert call["http.request.resend_count"] == 0

    # The upstream was sent the attempt's context: same trace, the attempt as parent.
    sent = plain.upstream.headers[-1]["traceparent"]
    _, trace_id, span_id, _ = sent.split("-")
    assert attempt.context is not None
    assert trace_id == TRACE_ID
    assert span_id == format(attempt.context.span_id, "016x")


async def test_a_stream_and_a_session_get_spans_of_their_own(plain: Traced) -> None:
    plain.upstream.then(plain.upstream.sse(STREAM))
    stream = await plain.sdk.chat.completions.create(
        stream=True, extra_body={"session_id": "s-1"}, **hello()
    )
    assert [c async for c in stream]
    server = plain.server_span()
    names = sorted(s.name for s in plain.children(server))
    assert names == [
        "POST",
        "sessions append",
        "sessions load",
        "translator.matrix",
        "translator.stream",
    ]
    attributes = dict(server.attributes or {})
    assert attributes["gen_ai.usage.output_tokens"] == 2


@pytest.mark.parametrize("allow_logging", [False, None])
async def test_no_content_reaches_a_span_unless_both_allowed_and_configured(
    with_content: Traced, plain: Traced, allow_logging: bool | None
) -> None:
    # Content on in the configuration, but this request does not allow logging;
    # or the request allows it (the default) but the configuration keeps it off.
    setup = with_content if allow_logging is False else plain
    await setup.sdk.chat.completions.create(**hello(allow_logging))
    assert setup.spans()
    for span in setup.spans():
        dumped = span.to_json()
        assert SECRET not in dumped
        assert "Hi there" not in dumped


async def test_content_reaches_the_span_when_configured_and_allowed(with_content: Traced) -> None:
    await with_content.sdk.chat.completions.create(**hello(True))
    events = {e.name: dict(e.attributes or {}) for e in with_content.server_span().events}
    assert SECRET in str(events["gen_ai.content.prompt"]["gen_ai.prompt"])
    assert "Hi there" in str(events["gen_ai.content.completion"]["gen_ai.completion"])


NO_OTEL = r"""
import importlib.abc, json, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

if sys.argv[1] == "missing":
    sys.meta_path.insert(0, Missing())

import asyncio
from translator.config import Config, ConfigError
from translator.server import create_app, serving

async def main():
    config = Config.default()
    app = create_app(config)
    async with serving(app) as root:
        import aiohttp
        async with aiohttp.ClientSession() as s:
            body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
            async with s.post(root + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
    served = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    config.server.observability.traces = True
    try:
        create_app(config)
        refused = None
    except ConfigError as exc:
        refused = str(exc)
    return served, refused

served, refused = asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(json.dumps({"served": served, "refused": refused, "loaded": loaded}))
"""


def _run_without_tracing(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", NO_OTEL, mode], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_without_traces_configured_nothing_of_opentelemetry_is_imported() -> None:
    found = _run_without_tracing("installed")
    assert found["served"] == []  # building the app and serving a chat loaded none of it
    assert found["refused"] is None  # the extra is installed here: traces can be turned on,
    assert found["loaded"]  # and turning them on is what loads it


def test_without_the_extra_the_server_runs_and_traces_are_refused_clearly() -> None:
    found = _run_without_tracing("missing")
    assert found["served"] == found["loaded"] == []
    assert "otel" in found["refused"]
    assert "traces" in found["refused"]


async def test_serve_exports_spans_as_the_otel_variables_say(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server.observability]\ntraces = true\n[backends.echo]\nplugin = "echo"\n')
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    async with serve_process(config, env) as server:
        sdk = openai.AsyncOpenAI(base_url=f"{server.root}/v1", api_key="x", max_retries=0)
        await sdk.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": TRACEPARENT},
        )
        await sdk.close()
    assert '"name": "chat unrouted"' in server.stdout
    assert TRACE_ID in server.stdout
    assert "gateway-under-test" in server.stdout


def test_serve_refuses_an_exporter_nobody_provides(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server.observability]\ntraces = true\n[backends.echo]\nplugin = "echo"\n')
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "no-such-exporter"}
    done = subprocess.run(
        [sys.executable, "-m", "translator", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "no-such-exporter" in done.stderr
