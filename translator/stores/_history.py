"""Joining a session's history to a request, and recording the answer.

What the backend is sent, for a request in a session with a stored history:

1. Instructions: the request's own leading system/developer messages when it
   has any (they also replace the stored ones), else the stored ones. A client
   that resends its system prompt on every call therefore never has it twice.
2. The stored turns.
3. The request's other messages, less any head that repeats the tail of the
   stored turns: a client that echoes the last answer back (the usual
   tool-calling loop: the assistant's ``tool_calls`` message, then the tool
   results) or resends the whole conversation does not get it twice.

What is stored, after a successful answer: the request's instructions (if it
sent any), its new messages, and the answer as an assistant message with its
tool calls. A stream is stored only once it has been read to the end and
its answer closed with a ``finish_reason``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import msgspec

from .._model import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FunctionCall,
    FunctionToolCall,
    ImagePart,
    Message,
    ToolCall,
)
from .._telemetry import store_call
from ._sessions import SessionStore, split_instructions

__all__ = ["StreamRecorder", "Turn", "answer_message", "merge_history"]


def merge_history(
    history: Sequence[Message], messages: list[Message]
) -> tuple[list[Message], list[Message]]:
    """``(sent, new)``: what the backend is sent, and what the request adds to the session."""
    if not history:
        return messages, list(messages)
    h = split_instructions(history)
    n = split_instructions(messages)
    body = history[h:]
    rest = messages[n:]
    k = _overlap(body, rest)
    if k:
        rest = rest[k:]
    instructions = messages[:n] if n else history[:h]
    return [*instructions, *body, *rest], [*messages[:n], *rest]


def _overlap(body: Sequence[Message], rest: Sequence[Message]) -> int:
    """The longest head of ``rest`` (leaving at least one message) that ends ``body``."""
    for k in range(min(len(body), len(rest) - 1), 0, -1):
        tail = body[len(body) - k :]
        if all(_same(a, b) for a, b in zip(tail, rest, strict=False)):
            return k
    return 0


def _detached(message: Message) -> Message:
    """``message``, copied as deep as the matrix may change it (parts, image details)."""
    content = getattr(message, "content", None)
    if type(content) is not list:
        return message
    parts = [
        msgspec.structs.replace(p, image_url=copy.copy(p.image_url)) if type(p) is ImagePart else p
        for p in content
    ]
    return msgspec.structs.replace(message, content=parts)


def _same(stored: Message, sent: Message) -> bool:
    if isinstance(stored, AssistantMessage) and isinstance(sent, AssistantMessage):
        return (
            (stored.content or None) == (sent.content or None)
            and (stored.tool_calls or None) == (sent.tool_calls or None)
            and (stored.refusal or None) == (sent.refusal or None)
        )
    return stored == sent


def answer_message(response: ChatResponse) -> AssistantMessage:
    """The first choice of ``response`` as a message of the conversation."""
    message = response.choices[0].message
    return _assistant(message.content, message.refusal, message.tool_calls)


def _assistant(
    content: str | None, refusal: str | None, tool_calls: list[ToolCall] | object
) -> AssistantMessage:
    answer = AssistantMessage(content=content)
    if refusal:
        answer.refusal = refusal
    if isinstance(tool_calls, list) and tool_calls:
        answer.tool_calls = tool_calls
    elif content is None and not refusal:
        answer.content = ""
    return answer


class StreamRecorder:
    """Gathers the first choice of a stream into the answer it adds up to."""

    __slots__ = ("_calls", "_content", "_refusal", "finished")

    def __init__(self) -> None:
        self._content: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, tuple[list[str], list[str], list[str]]] = {}
        self.finished = False
        """Whether the choice has been closed with a ``finish_reason``."""

    def add(self, chunk: ChatChunk) -> None:
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.finish_reason is not None:
                self.finished = True
            delta = choice.delta
            if delta.content:
                self._content.append(delta.content)
            if delta.refusal:
                self._refusal.append(delta.refusal)
            if delta.tool_calls:
                for piece in delta.tool_calls:
                    ids, names, args = self._calls.setdefault(piece.index, ([], [], []))
                    if piece.id:
                        ids.append(piece.id)
                    fn = piece.function
                    if fn is not None:
                        if fn.name:
                            names.append(fn.name)
                        if fn.arguments:
                            args.append(fn.arguments)

    def message(self) -> AssistantMessage:
        """The answer the stream carried."""
        calls: list[ToolCall] = [
            FunctionToolCall("".join(ids), FunctionCall("".join(names), "".join(args)))
            for _, (ids, names, args) in sorted(self._calls.items())
        ]
        content = "".join(self._content) if self._content else None
        return _assistant(content, "".join(self._refusal) or None, calls)


class Turn:
    """One request's part in a session: the history it was sent, and recording its answer.

    With ``retain`` false (``vlmrun.metadata.allow_retention: false``) the
    request still gets the history but nothing of it is stored.
    """

    __slots__ = ("new", "session_id", "store")

    def __init__(self, store: SessionStore | None, session_id: str, new: list[Message]) -> None:
        self.store = store
        self.session_id = session_id
        self.new = new

    @classmethod
    async def begin(
        cls, store: SessionStore, session_id: str, request: ChatRequest, *, retain: bool
    ) -> Turn:
        """Load the history into ``request.messages``.

        Stored messages with content parts are copied first: the backend's
        matrix, applied after the join, may drop parts in place, and what the
        store holds must stay as it was sent.
        """
        with store_call("sessions", "load"):
            loaded = await store.load(session_id)
        history = [_detached(m) for m in loaded]
        request.messages, new = merge_history(history, request.messages)
        return cls(store if retain else None, session_id, new)

    async def record(self, answer: AssistantMessage) -> None:
        """Store the request's new messages and ``answer`` together."""
        if self.store is not None:
            with store_call("sessions", "append"):
                await self.store.append(self.session_id, [*self.new, answer])
