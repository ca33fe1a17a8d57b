"""The ``openai-compatible`` backend: any upstream that speaks the Chat Completions API.

vLLM, the llama.cpp server, LM Studio, Ollama's ``/v1``, or a hosted agents
endpoint. ``base_url`` is the upstream's API root (``http://host:8000/v1``);
requests go to ``POST {base_url}/chat/completions`` with
``Authorization: Bearer {api_key}``.

The request sent is the OpenAI JSON the client sent, after the matrix.
By default everything in the OpenAI API passes through, except what the
canonical response cannot carry back (log probabilities, audio output). The
VLM agents extensions are not sent unless the configuration forwards them
(``matrix = {session_id = "supported", vlmrun = "supported"}``): until then the
translator keeps the conversation of a ``session_id`` (or
``vlmrun.metadata.session_id``, honouring ``allow_retention``), so those rows
are emulated, and ``vlmrun.domain`` is dropped and reported. The extension
content parts (``input_file``, ``video_url``, ``audio_url``, ``file_url``) are
refused unless the matrix allows them. Top-level fields the canonical model
does not know (``top_k``, ``chat_template_kwargs``, ...) pass through for the
upstream to judge; ``options.unknown_fields`` changes that.

Files uploaded to the translator's own ``/v1/files`` are unknown upstream: a
``file`` part naming one by ``file_id`` is sent with the content inline
instead (``file_data``, a data URI, and ``filename``), and so is an
``input_file`` part naming one, as a ``file`` part, when the matrix lets
``input_file`` through. An id the translator does not know is the upstream's
own and passes unchanged.

Options: ``headers`` (extra request headers), ``model`` (the upstream model
name, or a table from the requested name to the upstream's),
``unknown_fields`` (``supported`` | ``ignored`` | ``rejected``) and
``keeps_sessions`` (whether the upstream keeps conversation state; by default
true exactly when ``session_id`` is forwarded).

Streams are read as server-sent events, incrementally; a stream that ends
without ``data: [DONE]`` is an error, never a clean stop. Upstream errors,
before or inside a stream, are passed through with the upstream's message,
type, param, code and (for a 4xx) status; a 401 or 403 is the upstream
refusing the configured ``api_key`` and becomes a 502 (see :mod:`translator._http`).

A chat completion creates nothing upstream, so it is sent as idempotent: it is
retried after a 502, a 504 or a connection lost mid-request too. A turn of a
session the upstream keeps (``session_id`` forwarded) is not, since a repeat
could add it to the conversation twice.
"""

from __future__ import annotations

from collections.abc import Callable

from translator.plugin_api import (
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    Matrix,
    Treatment,
    hookimpl,
)

from .backend import OpenAICompatBackend, SessionKeepingBackend
from .matrix import MATRIX, PLUGIN
from .options import Options
from .reply import decode_response, parse_error

__all__ = [
    "MATRIX",
    "OpenAICompatBackend",
    "OpenAICompatFactory",
    "Options",
    "decode_response",
    "parse_error",
    "register_backends",
]


class OpenAICompatFactory:
    plugin_name = PLUGIN
    description = "Any OpenAI-compatible upstream (vLLM, llama.cpp, LM Studio, agents endpoints)."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        if not settings.base_url:
            raise ValueError(f"backend {name!r}: the {PLUGIN} plugin needs a base_url")
        options = settings.options_as(Options, name)
        base = Matrix(name, MATRIX.rules, unknown=options.unknown_fields)
        matrix = settings.configure_matrix(base, name)
        keeps = options.keeps_sessions
        if keeps is None:
            keeps = matrix.treatment("session_id") == Treatment.SUPPORTED
        kind = SessionKeepingBackend if keeps else OpenAICompatBackend
        return kind(
            name,
            base_url=settings.base_url,
            http=context.http_for(name, settings),
            api_key=settings.resolved_api_key(),
            matrix=matrix,
            options=options,
            files=context.files,
        )


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(OpenAICompatFactory())
