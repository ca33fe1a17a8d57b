"""What the translator is compared with, on the same bytes.

- ``msgspec`` untyped decode and encode: the floor. A translator must at least
  read and write the JSON; this is the fastest way to do only that.
- stdlib ``json`` decode and encode: what naive code pays.
- pydantic, through the ``openai`` SDK's own ``ChatCompletion`` and
  ``ChatCompletionChunk`` types (when installed): what a pydantic-based layer
  pays to validate and re-serialise the same reply.
- LiteLLM's Ollama request transformation, only when LiteLLM is importable.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = [
    "litellm_ollama",
    "msgspec_floor",
    "pydantic_chunk",
    "pydantic_response",
    "stdlib_json",
]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def msgspec_floor(body: bytes) -> Callable[[], object]:
    """Untyped ``msgspec`` decode then encode of ``body``."""
    return lambda: _encode(_decode(body))


def stdlib_json(body: bytes) -> Callable[[], object]:
    """``json.loads`` then ``json.dumps`` (to bytes) of ``body``."""
    return lambda: json.dumps(json.loads(body), separators=(",", ":")).encode()


def pydantic_response(body: bytes) -> Callable[[], object] | str:
    """Validate and dump an OpenAI ``chat.completion`` with the SDK's pydantic type."""
    try:
        from openai.types.chat import ChatCompletion
    except ImportError as exc:
        return f"openai SDK not importable: {exc}"
    ChatCompletion.model_validate_json(body)
    return lambda: ChatCompletion.model_validate_json(body).model_dump_json(exclude_unset=True)


def pydantic_chunk(line: bytes) -> Callable[[], object] | str:
    """Validate and dump one ``chat.completion.chunk`` with the SDK's pydantic type."""
    try:
        from openai.types.chat import ChatCompletionChunk
    except ImportError as exc:
        return f"openai SDK not importable: {exc}"
    ChatCompletionChunk.model_validate_json(line)
    return lambda: ChatCompletionChunk.model_validate_json(line).model_dump_json(exclude_unset=True)


def litellm_ollama(body: bytes) -> Callable[[], object] | str:
    """LiteLLM's own OpenAI-to-Ollama ``/api/chat`` request transformation, if installed."""
    if importlib.util.find_spec("litellm") is None:
        return "litellm not installed (optional)"
    # LiteLLM fetches a model price list from the internet when imported,
    # unless told to use the copy it ships.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        from litellm.llms.ollama.chat.transformation import (  # type: ignore[import-not-found]
            OllamaChatConfig,
        )
    except ImportError as exc:
        return f"litellm has no Ollama chat transformation here: {exc}"
    config = OllamaChatConfig()

    def run() -> object:
        request: dict[str, Any] = _decode(body)
        messages = request.pop("messages")
        model = request.pop("model")
        params = config.map_openai_params(request, {}, model, drop_params=True)
        native = config.transform_request(model, messages, params, {}, {})
        return _encode(native)

    try:
        run()
    except Exception as exc:  # an API drift in an optional library: reported, not fatal
        return f"litellm transformation failed: {type(exc).__name__}: {exc}"
    return run
