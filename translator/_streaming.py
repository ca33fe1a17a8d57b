"""Building one stream's chunks, and emulating a stream from a whole response."""

from __future__ import annotations

from collections.abc import Iterator

from ._model import (
    ChatChunk,
    ChatResponse,
    ChunkChoice,
    Delta,
    FinishReason,
    FunctionCallDelta,
    FunctionToolCall,
    ToolCallDelta,
    Usage,
)
from ._openai.encode import new_completion_id, now

__all__ = ["ChunkStream", "chunks_from_response"]


class ChunkStream:
    """The chunks of one stream: one ``id`` and one ``created`` for all of them.

    The first content, refusal or tool-call delta carries ``role``; later
    ones do not.
    """

    __slots__ = ("_role_sent", "created", "id", "model", "session_id")

    def __init__(
        self,
        model: str,
        *,
        id: str | None = None,
        created: int | None = None,
        session_id: str | None = None,
    ) -> None:
        self.id = id or new_completion_id()
        self.created = created if created is not None else now()
        self.model = model
        self.session_id = session_id
        self._role_sent = False

    def _chunk(self, delta: Delta, finish: FinishReason | None = None) -> ChatChunk:
        if not self._role_sent:
            delta.role = "assistant"
            self._role_sent = True
        return ChatChunk(
            self.id,
            self.created,
            self.model,
            [ChunkChoice(0, delta, finish)],
            session_id=self.session_id,
        )

    def text(self, content: str) -> ChatChunk:
        """A content delta."""
        return self._chunk(Delta(content=content))

    def refusal(self, refusal: str) -> ChatChunk:
        """A refusal delta."""
        return self._chunk(Delta(refusal=refusal))

    def tool_calls(self, deltas: list[ToolCallDelta]) -> ChatChunk:
        """A tool-call delta; each piece names the call it continues by ``index``."""
        return self._chunk(Delta(tool_calls=deltas))

    def finish(self, reason: FinishReason = "stop") -> ChatChunk:
        """The closing chunk of the choice, with its ``finish_reason``."""
        return self._chunk(Delta(), reason)

    def usage(self, usage: Usage) -> ChatChunk:
        """The usage chunk: ``choices`` is empty."""
        return ChatChunk(
            self.id, self.created, self.model, [], usage=usage, session_id=self.session_id
        )


def chunks_from_response(
    response: ChatResponse, *, include_usage: bool, piece_words: int = 1
) -> Iterator[ChatChunk]:
    """Emulate a stream from a whole response: content word by word, then finish and usage."""
    stream = ChunkStream(
        response.model, id=response.id, created=response.created, session_id=response.session_id
    )
    choice = response.choices[0]
    message = choice.message
    if message.content:
        for piece in _pieces(message.content, piece_words):
            yield stream.text(piece)
    if message.refusal:
        yield stream.refusal(message.refusal)
    if message.tool_calls:
        deltas = [
            ToolCallDelta(
                i,
                call.id,
                "function",
                FunctionCallDelta(call.function.name, call.function.arguments),
            )
            for i, call in enumerate(message.tool_calls)
            if isinstance(call, FunctionToolCall)
        ]
        if deltas:
            yield stream.tool_calls(deltas)
    yield stream.finish(choice.finish_reason)
    if include_usage:
        yield stream.usage(response.usage)


def _pieces(text: str, words: int) -> Iterator[str]:
    """Split ``text`` into runs of ``words`` words, each keeping its trailing space."""
    start = 0
    count = 0
    length = len(text)
    i = 0
    while i < length:
        if text[i] == " ":
            count += 1
            if count == words:
                yield text[start : i + 1]
                start = i + 1
                count = 0
        i += 1
    if start < length:
        yield text[start:]
