"""The ``echo`` backend: offline and deterministic, the embedded default.

It answers with the last user text and a line saying what else it received
(``Received: 2 images, 1 file.``) and counts usage with the honest estimate of
:mod:`translator._tokens`. It does not stream itself: its matrix emulates
``stream``, so the translator streams the whole answer word by word.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import msgspec

from translator.plugin_api import (
    REQUEST_FIELDS,
    ROLES,
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    ChatRequest,
    ChatResponse,
    Choice,
    Matrix,
    ResponseMessage,
    TextPart,
    Treatment,
    Usage,
    UserMessage,
    emulated,
    encode_request,
    estimate_tokens,
    hookimpl,
    new_completion_id,
    now,
    supported,
    tag_of,
)

__all__ = ["MATRIX", "EchoBackend", "EchoFactory"]

_KINDS = {
    "image_url": ("image", "images"),
    "input_audio": ("audio clip", "audio clips"),
    "audio_url": ("audio clip", "audio clips"),
    "video_url": ("video", "videos"),
    "file": ("file", "files"),
    "input_file": ("file", "files"),
    "file_url": ("file", "files"),
}

_ROWS = [
    *(supported(f, "echoed back") for f in REQUEST_FIELDS if f != "stream"),
    emulated("stream", "the translator streams the whole answer, word by word"),
    *(supported(f"role.{r}", "counted in the prompt") for r in ROLES),
    *(supported(f"content.{t}", "counted in the answer") for t in ("text", "refusal", *_KINDS)),
]
MATRIX = Matrix("echo", _ROWS, unknown=Treatment.IGNORED)

_response_decoder = msgspec.json.Decoder(ChatResponse)


class EchoBackend(Backend):
    """Answers from the request itself; no network, no state."""

    def __init__(self, name: str = "echo", *, delay: float = 0.0) -> None:
        self.name = name
        self.matrix = MATRIX.renamed(name)
        self.delay = delay

    def answer(self, request: ChatRequest) -> ChatResponse:
        """The deterministic answer to ``request``."""
        text, received = _last_user(request)
        content = text
        if received:
            summary = ", ".join(
                f"{n} {_KINDS[k][0] if n == 1 else _KINDS[k][1]}" for k, n in received.items()
            )
            content = f"{text}\nReceived: {summary}." if text else f"Received: {summary}."
        prompt = sum(estimate_tokens(t) for t in _texts(request))
        usage = Usage.of(prompt, estimate_tokens(content))
        usage.estimated = True
        message = ResponseMessage(content=content)
        return ChatResponse(new_completion_id(), now(), request.model, [Choice(0, message)], usage)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(request)

    def encode_request(self, request: ChatRequest) -> bytes:
        return encode_request(request)

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        return _response_decoder.decode(body)


def _last_user(request: ChatRequest) -> tuple[str, Counter[str]]:
    for message in reversed(request.messages):
        if isinstance(message, UserMessage):
            if isinstance(message.content, str):
                return message.content, Counter()
            texts = [p.text for p in message.content if isinstance(p, TextPart)]
            kinds = Counter(tag_of(p) for p in message.content if not isinstance(p, TextPart))
            return " ".join(texts), kinds
    return "", Counter()


def _texts(request: ChatRequest) -> list[str]:
    found: list[str] = []
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            found.append(content)
        elif isinstance(content, list):
            found.extend(p.text for p in content if isinstance(p, TextPart))
    return found


class EchoFactory:
    plugin_name = "echo"
    description = "Offline and deterministic: answers with what it was sent."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        delay = float(settings.options.get("delay", 0.0))
        backend = EchoBackend(name, delay=delay)
        backend.matrix = settings.configure_matrix(backend.matrix, name)
        return backend


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(EchoFactory())
