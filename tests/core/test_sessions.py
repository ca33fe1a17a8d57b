"""Sessions through the translator: a stateless backend is sent the whole conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import pytest

from translator import Translator
from translator._backend import Backend, caller_scope
from translator._compat import Matrix, Treatment, emulated, ignored, supported
from translator._model import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    FunctionToolCall,
    Message,
    ResponseMessage,
    SystemMessage,
    ToolCallDelta,
    ToolMessage,
    Usage,
    UserMessage,
)
from translator._openai import decode_request
from translator._streaming import ChunkStream
from translator.errors import UpstreamError, UpstreamTimeoutError
from translator.stores import MemorySessionStore, SessionStore
from translator.testing import MockBackend

# Like a stateless upstream's matrix: the translator keeps sessions, and
# the VLM extensions never reach the backend.
MATRIX = Matrix(
    "recorder",
    [
        emulated("session_id", "kept by the translator"),
        ignored("vlmrun", "not a field this backend knows"),
        supported("stream", "streams natively"),
    ],
    unknown=Treatment.SUPPORTED,
)


class RecordingBackend(Backend):
    """Answers ``answer N: <last user text>``; calls a tool when asked to; remembers requests."""

    def __init__(self, *, keeps_sessions: bool = False, matrix: Matrix = MATRIX) -> None:
        self.name = "recorder"
        self.matrix = matrix
        self.keeps_sessions = keeps_sessions  # type: ignore[misc]
        self.seen: list[list[Message]] = []
        self.requests: list[ChatRequest] = []
        self.delays: list[float] = []
        self.fail_after: int | None = None

    def _answer(self, request: ChatRequest) -> ResponseMessage:
        self.seen.append(list(request.messages))
        self.requests.append(request)
        last = request.messages[-1]
        text = last.content if isinstance(last.content, str) else ""
        if text == "use the tool":
            call = FunctionToolCall(f"call_{len(self.seen)}", FunctionCall("lookup", '{"q": 1}'))
            return ResponseMessage(tool_calls=[call])
        return ResponseMessage(content=f"answer {len(self.seen)}: {text}")

    async def complete(self, request: ChatRequest) -> ChatResponse:
        message = self._answer(request)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        if self.fail_after == 0:
            raise UpstreamError("the backend fell over", backend=self.name)
        reason: FinishReason = "tool_calls" if message.tool_calls else "stop"
        return ChatResponse(
            "chatcmpl-1", 1, request.model, [Choice(0, message, reason)], Usage.of(1, 1)
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        message = self._answer(request)
        stream = ChunkStream(request.model)
        sent = 0
        if message.content:
            for word in message.content.split(" "):
                if self.fail_after is not None and sent == self.fail_after:
                    raise UpstreamError("the stream was cut", backend=self.name)
                yield stream.text(word + " ")
                sent += 1
        if message.tool_calls:
            call = message.tool_calls[0]
            assert isinstance(call, FunctionToolCall)
            yield stream.tool_calls(
                [ToolCallDelta(0, call.id, "function", FunctionCallDelta(call.function.name, ""))]
            )
            for piece in ('{"q"', ": 1}"):
                yield stream.tool_calls(
                    [ToolCallDelta(0, function=FunctionCallDelta(arguments=piece))]
                )
        yield stream.finish("tool_calls" if message.tool_calls else "stop")


def body(messages: Sequence[dict[str, Any]], **extra: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "messages": messages, **extra})


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def rendered(messages: Sequence[Message]) -> list[str]:
    """Messages as ``role: text`` lines, tool calls as ``assistant -> name(args)``."""
    lines = []
    for m in messages:
        role = type(m).__struct_config__.tag
        if isinstance(m, AssistantMessage) and m.tool_calls:
            calls = ", ".join(
                f"{c.function.name}({c.function.arguments})#{c.id}"
                for c in m.tool_calls
                if isinstance(c, FunctionToolCall)
            )
            lines.append(f"{role} -> {calls}")
        else:
            lines.append(f"{role}: {getattr(m, 'content', '')}")
    return lines


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def translator(backend: RecordingBackend) -> Translator:
    return Translator({"recorder": backend})


async def collect(translator: Translator, raw: bytes, scope: str | None = None) -> list[ChatChunk]:
    stream = await translator.stream(raw, "recorder", scope=scope)
    return [chunk async for chunk in stream]


# -- complete -----------------------------------------------------------------


async def test_a_session_continues_over_two_calls(
    translator: Translator, backend: RecordingBackend
) -> None:
    system = {"role": "system", "content": "be brief"}
    first = await translator.complete(body([system, user("hello")], session_id="s1"), "recorder")
    second = await translator.complete(body([system, user("again")], session_id="s1"), "recorder")

    assert rendered(backend.seen[1]) == [
        "system: be brief",
        "user: hello",
        "assistant: answer 1: hello",
        "user: again",
    ]
    assert second.response.choices[0].message.content == "answer 2: again"
    assert first.response.session_id == second.response.session_id == "s1"
    # The backend never saw the field the matrix emulates.
    assert backend.requests[1].session_id is msgspec.UNSET
    assert "session_id" in first.report.emulated


async def test_the_system_prompt_is_not_repeated_and_a_new_one_replaces_it(
    translator: Translator, backend: RecordingBackend
) -> None:
    await translator.complete(
        body([{"role": "system", "content": "v1"}, user("a")], session_id="s"), "recorder"
    )
    await translator.complete(body([user("b")], session_id="s"), "recorder")
    await translator.complete(
        body([{"role": "system", "content": "v2"}, user("c")], session_id="s"), "recorder"
    )
    await translator.complete(body([user("d")], session_id="s"), "recorder")

    assert rendered(backend.seen[1])[0] == "system: v1"
    assert [line for line in rendered(backend.seen[2]) if line.startswith("system")] == [
        "system: v2"
    ]
    assert [line for line in rendered(backend.seen[3]) if line.startswith("system")] == [
        "system: v2"
    ]
    assert rendered(backend.seen[3])[-1] == "user: d"
    assert len(backend.seen[3]) == 8  # v2, then a, b, c with their answers, then d


async def test_session_by_vlmrun_metadata(
    translator: Translator, backend: RecordingBackend
) -> None:
    meta = {"vlmrun": {"metadata": {"session_id": "meta-1", "environment": "dev"}}}
    await translator.complete(body([user("one")], **meta), "recorder")
    second = await translator.complete(body([user("two")], **meta), "recorder")

    assert rendered(backend.seen[1]) == ["user: one", "assistant: answer 1: one", "user: two"]
    assert backend.requests[1].vlmrun is msgspec.UNSET  # dropped by the matrix
    assert second.response.session_id == "meta-1"


async def test_sessions_do_not_mix(translator: Translator, backend: RecordingBackend) -> None:
    await translator.complete(body([user("for a")], session_id="a"), "recorder")
    await translator.complete(body([user("for b")], session_id="b"), "recorder")
    assert rendered(backend.seen[1]) == ["user: for b"]


async def test_one_session_id_in_two_scopes_is_two_sessions(
    translator: Translator, backend: RecordingBackend
) -> None:
    await translator.complete(body([user("alice's")], session_id="s"), "recorder", scope="alice")
    await translator.complete(body([user("bob's")], session_id="s"), "recorder", scope="bob")
    chunks = await collect(translator, body([user("again")], session_id="s", stream=True), "bob")
    assert rendered(backend.seen[1]) == ["user: bob's"]
    assert rendered(backend.seen[2]) == ["user: bob's", "assistant: answer 2: bob's", "user: again"]
    assert chunks[0].session_id == "s"  # echoed as the caller sent it
    # The backend is told whom each request is answered for.
    assert [caller_scope(r) for r in backend.requests] == ["alice", "bob", "bob"]


async def test_a_request_reused_without_a_scope_is_answered_for_no_one(
    translator: Translator, backend: RecordingBackend
) -> None:
    request = decode_request(body([user("hi")]))
    await translator.complete(request, "recorder", scope="alice")
    assert backend.requests[-1] is request
    assert caller_scope(request) == "alice"
    await translator.complete(request, "recorder")
    assert backend.requests[-1] is request
    assert caller_scope(request) is None


async def test_no_session_id_means_no_history(
    translator: Translator, backend: RecordingBackend
) -> None:
    await translator.complete(body([user("one")]), "recorder")
    result = await translator.complete(body([user("two")]), "recorder")
    assert rendered(backend.seen[1]) == ["user: two"]
    assert result.response.session_id is None
    assert isinstance(translator.sessions, MemorySessionStore)
    assert translator.sessions.live_sessions() == 0


async def test_allow_retention_false_gets_history_but_adds_nothing(
    translator: Translator, backend: RecordingBackend
) -> None:
    private = {"vlmrun": {"metadata": {"allow_retention": False}}}
    await translator.complete(body([user("kept")], session_id="s"), "recorder")
    await translator.complete(body([user("secret")], session_id="s", **private), "recorder")
    await translator.complete(body([user("later")], session_id="s"), "recorder")

    assert rendered(backend.seen[1]) == ["user: kept", "assistant: answer 1: kept", "user: secret"]
    assert rendered(backend.seen[2]) == ["user: kept", "assistant: answer 1: kept", "user: later"]


async def test_allow_retention_false_in_a_new_session_creates_nothing(
    translator: Translator, backend: RecordingBackend
) -> None:
    meta = {"session_id": "private", "allow_retention": False}
    await translator.complete(body([user("secret")], vlmrun={"metadata": meta}), "recorder")
    assert translator.sessions is not None
    assert await translator.sessions.load("private") == []


async def test_a_backend_that_keeps_sessions_gets_no_history() -> None:
    backend = RecordingBackend(
        keeps_sessions=True, matrix=Matrix("r", [], unknown=Treatment.SUPPORTED)
    )
    translator = Translator({"recorder": backend})
    await translator.complete(body([user("one")], session_id="s"), "recorder")
    second = await translator.complete(body([user("two")], session_id="s"), "recorder")

    assert rendered(backend.seen[1]) == ["user: two"]
    assert backend.requests[1].session_id == "s"  # the backend keeps the session itself
    assert second.response.session_id == "s"
    assert translator.sessions is not None
    assert await translator.sessions.load("s") == []


async def test_sessions_false_keeps_no_history(backend: RecordingBackend) -> None:
    translator = Translator({"recorder": backend}, sessions=False)
    assert translator.sessions is None
    await translator.complete(body([user("one")], session_id="s"), "recorder")
    second = await translator.complete(body([user("two")], session_id="s"), "recorder")
    assert rendered(backend.seen[1]) == ["user: two"]
    # The matrix dropped session_id and no session was kept: nothing to echo.
    assert second.response.session_id is None


async def test_a_store_of_ones_own_is_used(backend: RecordingBackend) -> None:
    class Recording(MemorySessionStore):
        def __init__(self) -> None:
            super().__init__()
            self.appended: list[tuple[str, int]] = []

        async def append(self, session_id: str, messages: Sequence[Message]) -> None:
            self.appended.append((session_id, len(messages)))
            await super().append(session_id, messages)

    store = Recording()
    translator = Translator({"recorder": backend}, sessions=store)
    await translator.complete(body([user("one")], session_id="s"), "recorder")
    assert store.appended == [("s", 2)]
    assert isinstance(translator.sessions, SessionStore)


async def test_a_failed_call_stores_nothing(
    translator: Translator, backend: RecordingBackend
) -> None:
    backend.fail_after = 0
    with pytest.raises(UpstreamError):
        await translator.complete(body([user("lost")], session_id="s"), "recorder")
    backend.fail_after = None
    await translator.complete(body([user("next")], session_id="s"), "recorder")
    assert rendered(backend.seen[1]) == ["user: next"]


async def test_tool_calls_are_stored_and_an_echoed_call_is_not_doubled(
    translator: Translator, backend: RecordingBackend
) -> None:
    first = await translator.complete(body([user("use the tool")], session_id="s"), "recorder")
    message = first.response.choices[0].message
    assert message.tool_calls
    # The usual tool loop: the client sends back the assistant's call, then the result.
    echoed = msgspec.to_builtins(message)
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    await translator.complete(body([echoed, tool], session_id="s"), "recorder")

    assert rendered(backend.seen[1]) == [
        "user: use the tool",
        'assistant -> lookup({"q": 1})#call_1',
        "tool: 42",
    ]
    assert isinstance(backend.seen[1][2], ToolMessage)


async def test_a_client_resending_the_conversation_does_not_double_it(
    translator: Translator, backend: RecordingBackend
) -> None:
    await translator.complete(body([user("one")], session_id="s"), "recorder")
    full = [user("one"), {"role": "assistant", "content": "answer 1: one"}, user("two")]
    await translator.complete(body(full, session_id="s"), "recorder")
    await translator.complete(body([user("three")], session_id="s"), "recorder")

    assert rendered(backend.seen[1]) == ["user: one", "assistant: answer 1: one", "user: two"]
    assert len(backend.seen[2]) == 5


async def test_concurrent_requests_to_one_session_never_interleave(
    translator: Translator, backend: RecordingBackend
) -> None:
    backend.delays = [0.05, 0.04, 0.03, 0.02, 0.01]  # the first to start finishes last
    await asyncio.gather(
        *(
            translator.complete(body([user(f"q{i}")], session_id="busy"), "recorder")
            for i in range(5)
        )
    )
    assert translator.sessions is not None
    history = rendered(await translator.sessions.load("busy"))
    assert len(history) == 10
    for question, answer in zip(history[::2], history[1::2], strict=True):
        asked = question.removeprefix("user: ")
        assert answer.startswith("assistant: answer ")
        assert answer.endswith(f": {asked}")


# -- streams ------------------------------------------------------------------


async def test_a_stream_read_to_the_end_is_stored(
    translator: Translator, backend: RecordingBackend
) -> None:
    chunks = await collect(translator, body([user("hello there")], session_id="s", stream=True))
    assert all(c.session_id == "s" for c in chunks)
    await translator.complete(body([user("next")], session_id="s"), "recorder")
    assert rendered(backend.seen[1]) == [
        "user: hello there",
        "assistant: answer 1: hello there ",
        "user: next",
    ]


async def test_a_streamed_tool_call_is_stored_whole(
    translator: Translator, backend: RecordingBackend
) -> None:
    await collect(translator, body([user("use the tool")], session_id="s", stream=True))
    await translator.complete(
        body([{"role": "tool", "tool_call_id": "call_1", "content": "42"}], session_id="s"),
        "recorder",
    )
    assert rendered(backend.seen[1]) == [
        "user: use the tool",
        'assistant -> lookup({"q": 1})#call_1',
        "tool: 42",
    ]


async def test_a_stream_left_early_is_not_stored(
    translator: Translator, backend: RecordingBackend
) -> None:
    stream = await translator.stream(
        body([user("a long answer here")], session_id="s", stream=True), "recorder"
    )
    async for _ in stream:
        break
    await stream.aclose()
    assert translator.sessions is not None
    assert await translator.sessions.load("s") == []


async def test_a_stream_that_fails_is_not_stored(
    translator: Translator, backend: RecordingBackend
) -> None:
    backend.fail_after = 2
    with pytest.raises(UpstreamError):
        await collect(translator, body([user("cut short")], session_id="s", stream=True))
    assert translator.sessions is not None
    assert await translator.sessions.load("s") == []


async def test_a_stream_gets_the_history(translator: Translator, backend: RecordingBackend) -> None:
    await translator.complete(body([user("first")], session_id="s"), "recorder")
    await collect(translator, body([user("second")], session_id="s", stream=True))
    assert rendered(backend.seen[1]) == [
        "user: first",
        "assistant: answer 1: first",
        "user: second",
    ]


async def test_an_emulated_stream_is_stored_after_completion() -> None:
    matrix = Matrix(
        "recorder",
        [emulated("session_id", "kept here"), emulated("stream", "answered whole")],
        unknown=Treatment.SUPPORTED,
    )
    backend = RecordingBackend(matrix=matrix)
    translator = Translator({"recorder": backend})
    chunks = await collect(translator, body([user("hi")], session_id="s", stream=True))
    assert chunks[0].session_id == "s"
    await translator.complete(body([user("again")], session_id="s"), "recorder")
    assert rendered(backend.seen[1]) == ["user: hi", "assistant: answer 1: hi", "user: again"]


async def test_a_system_message_in_the_history_is_a_system_message(
    translator: Translator, backend: RecordingBackend
) -> None:
    sys = {"role": "system", "content": "rules"}
    await translator.complete(body([sys, user("x")], session_id="s"), "recorder")
    await translator.complete(body([user("y")], session_id="s"), "recorder")
    assert isinstance(backend.seen[1][0], SystemMessage)
    assert isinstance(backend.seen[1][1], UserMessage)


# -- with the library's mock backend ------------------------------------------


async def test_with_the_mock_backend_only_a_finished_stream_is_stored() -> None:
    mock = MockBackend(matrix=[emulated("session_id", "kept by the translator")])
    translator = Translator({"mock": mock})
    mock.reply_stream(["half ", "an answer"], finish=False)
    mock.reply_stream(["cut "], error=UpstreamTimeoutError("too slow"))
    mock.reply_stream(["a whole ", "answer"])
    mock.reply("fine")

    async def read(text: str) -> None:
        stream = await translator.stream(body([user(text)], session_id="s", stream=True), "mock")
        async for _ in stream:
            pass

    await read("unfinished")
    with pytest.raises(UpstreamTimeoutError):
        await read("failing")
    await read("whole")
    await translator.complete(body([user("last")], session_id="s"), "mock")

    assert rendered(mock.last_request.messages) == [
        "user: whole",
        "assistant: a whole answer",
        "user: last",
    ]
