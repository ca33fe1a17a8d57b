"""A mock backend for your own tests: it records requests and answers from a script.

::

    from translator import Translator
    from translator.testing import MockBackend

    mock = MockBackend()
    mock.reply("Hello!")                       # the next complete() answers this text
    mock.reply_stream(["Hel", "lo"], error=UpstreamTimeoutError("slow"))
    translator = Translator({"mock": mock})
    ...
    assert mock.requests[0].model == "gpt-4o"

Unscripted calls answer ``default_text``. The matrix supports everything by
default; pass ``matrix=`` (a :class:`~translator.Matrix` or rules) to
act like a pickier backend.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Literal

import msgspec

from ._backend import Backend, BackendContext, BackendFactory, BackendSettings
from ._compat import PART_TYPES, REQUEST_FIELDS, ROLES, Matrix, Rule, Treatment, supported
from ._hookspecs import hookimpl
from ._model import ChatChunk, ChatRequest, ChatResponse, Choice, ResponseMessage, Usage
from ._openai import encode_request, new_completion_id, now
from ._streaming import ChunkStream
from ._tokens import estimate_tokens

__all__ = ["PART_TYPES", "ROLES", "MockBackend", "MockCall", "MockFactory", "supports_everything"]


_response_decoder = msgspec.json.Decoder(ChatResponse)


def supports_everything(backend: str) -> Matrix:
    """A matrix that passes every field, role, content part and unknown field through."""
    rules = [
        *(supported(f, "passed to the mock") for f in REQUEST_FIELDS),
        *(supported(f"role.{r}", "passed to the mock") for r in ROLES),
        *(supported(f"content.{t}", "passed to the mock") for t in PART_TYPES),
    ]
    return Matrix(backend, rules, unknown=Treatment.SUPPORTED)


class MockCall(msgspec.Struct):
    """One call the mock received: ``complete`` or ``stream``, and its request."""

    kind: Literal["complete", "stream"]
    request: ChatRequest


_Reply = ChatResponse | str | BaseException
_Piece = ChatChunk | str


class _StreamScript(msgspec.Struct):
    pieces: list[_Piece]
    error: BaseException | None
    finish: bool


class MockBackend(Backend):
    """A scripted backend. ``calls`` and ``requests`` record what it was asked."""

    def __init__(
        self,
        name: str = "mock",
        *,
        matrix: Matrix | Iterable[Rule] | None = None,
        default_text: str = "ok",
        unknown: Treatment = Treatment.SUPPORTED,
    ) -> None:
        self.name = name
        if matrix is None:
            self.matrix = supports_everything(name)
        elif isinstance(matrix, Matrix):
            self.matrix = matrix
        else:
            self.matrix = Matrix(name, matrix, unknown=unknown)
        self.default_text = default_text
        self.calls: list[MockCall] = []
        self.closed = False
        self._replies: deque[_Reply] = deque()
        self._streams: deque[_StreamScript] = deque()

    # -- scripting ------------------------------------------------------------

    def reply(self, *replies: ChatResponse | str | BaseException) -> MockBackend:
        """Queue answers for the next ``complete`` calls: a response, a text, or an error."""
        self._replies.extend(replies)
        return self

    def reply_stream(
        self,
        pieces: Sequence[ChatChunk | str] | BaseException,
        *,
        error: BaseException | None = None,
        finish: bool = True,
    ) -> MockBackend:
        """Queue the next ``stream`` call's answer.

        ``pieces`` are chunks, or texts made into content chunks of one stream
        (closed with a ``stop`` chunk when ``finish``); an exception instead of
        pieces is raised at once, ``error`` after the pieces.
        """
        if isinstance(pieces, BaseException):
            self._streams.append(_StreamScript([], pieces, False))
        else:
            self._streams.append(_StreamScript(list(pieces), error, finish))
        return self

    # -- what it saw ----------------------------------------------------------

    @property
    def requests(self) -> list[ChatRequest]:
        """Every request received, as the backend got it (after the matrix)."""
        return [call.request for call in self.calls]

    @property
    def last_request(self) -> ChatRequest:
        """The most recent request; AssertionError when there was none."""
        assert self.calls, f"the {self.name} mock received no request"
        return self.calls[-1].request

    # -- the Backend seam ---------------------------------------------------

    def response(self, request: ChatRequest, text: str) -> ChatResponse:
        """A whole answer with ``text`` for ``request``, usage estimated."""
        contents = (getattr(m, "content", None) for m in request.messages)
        prompt = sum(estimate_tokens(c) for c in contents if isinstance(c, str))
        usage = Usage.of(prompt, estimate_tokens(text))
        message = ResponseMessage(content=text)
        return ChatResponse(new_completion_id(), now(), request.model, [Choice(0, message)], usage)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(MockCall("complete", request))
        scripted: _Reply = self._replies.popleft() if self._replies else self.default_text
        if isinstance(scripted, BaseException):
            raise scripted
        if isinstance(scripted, str):
            return self.response(request, scripted)
        return scripted

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.calls.append(MockCall("stream", request))
        if self._streams:
            script = self._streams.popleft()
        else:
            script = _StreamScript([self.default_text], None, True)
        include_usage = request.wants_usage
        stream = ChunkStream(request.model)
        texts: list[str] = []
        for piece in script.pieces:
            if isinstance(piece, str):
                texts.append(piece)
                yield stream.text(piece)
            else:
                yield piece
        if script.error is not None:
            raise script.error
        if script.finish:
            yield stream.finish()
            if include_usage:
                yield stream.usage(self.response(request, "".join(texts)).usage)

    def encode_request(self, request: ChatRequest) -> bytes:
        return encode_request(request)

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        return _response_decoder.decode(body)

    async def aclose(self) -> None:
        self.closed = True


class MockFactory:
    """Registers :class:`MockBackend` s as the ``mock`` plugin; keeps each one it builds."""

    plugin_name = "mock"
    description = "A scripted backend for tests: records requests, answers from a script."

    def __init__(self) -> None:
        self.built: dict[str, MockBackend] = {}

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        backend = MockBackend(name, default_text=str(settings.options.get("text", "ok")))
        backend.matrix = settings.configure_matrix(backend.matrix, name)
        self.built[name] = backend
        return backend

    @hookimpl
    def register_backends(self, register: Callable[[BackendFactory], None]) -> None:
        """Pluggy hook: register this factory (``pm.register(MockFactory())``)."""
        register(self)
