"""translator-shout: a backend that answers the last user message in capitals."""

from collections.abc import AsyncIterator, Callable

from translator.plugin_api import (
    Backend,
    BackendFactory,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkStream,
    Matrix,
    ResponseMessage,
    TextPart,
    Treatment,
    Usage,
    hookimpl,
    new_completion_id,
    now,
    rejected,
)


class ShoutBackend(Backend):
    def __init__(self, name: str) -> None:
        self.name = name
        # Everything passes through, except what shouting cannot do.
        self.matrix = Matrix(
            name, [rejected("n", "one shout at a time")], unknown=Treatment.SUPPORTED
        )

    def shout(self, request: ChatRequest) -> str:
        content = request.messages[-1].content
        if isinstance(content, list):
            content = " ".join(p.text for p in content if isinstance(p, TextPart))
        return (content or "").upper()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        text = self.shout(request)
        choice = Choice(0, ResponseMessage(content=text))
        usage = Usage.of(len(text.split()), len(text.split()))
        return ChatResponse(new_completion_id(), now(), request.model, [choice], usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        chunks = ChunkStream(request.model)  # one id and timestamp for the stream
        for word in self.shout(request).split():
            yield chunks.text(word + " ")
        yield chunks.finish("stop")


class ShoutFactory:
    plugin_name = "shout"
    description = "Answers the last user message in capitals."

    def create(self, name, settings, context) -> Backend:  # type: ignore[no-untyped-def]
        return ShoutBackend(name)


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(ShoutFactory())


@hookimpl
def adjust_response(response: ChatResponse, request: ChatRequest, backend: str) -> None:
    if backend == "shout":
        response.system_fingerprint = "shout-v1"
