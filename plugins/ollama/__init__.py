"""The ``ollama`` plugin: a local model through Ollama's native ``/api/chat``.

Configuration (``[backends.NAME]`` with ``plugin = "ollama"``)::

    base_url = "http://localhost:11434"
    [backends.NAME.options]
    models = { "gpt-4o" = "llava:13b" }     # client name -> Ollama name
    fetch = { allow = ["10.0.0.0/8"], max_bytes = 20971520, timeout = 30 }

``fetch`` is used only when the translator gives no shared media fetcher.
"""

from __future__ import annotations

from collections.abc import Callable

from translator.plugin_api import (
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    MediaFetcher,
    hookimpl,
)

from .backend import DEFAULT_BASE_URL, OllamaBackend
from .matrix import MATRIX
from .options import parse_options

__all__ = ["MATRIX", "OllamaBackend", "OllamaFactory", "register_backends"]


class OllamaFactory:
    plugin_name = "ollama"
    description = "A local model through Ollama's native /api/chat (NDJSON streaming)."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        options = parse_options(settings.options, backend=name)
        fetcher = context.fetcher
        owns_fetcher = fetcher is None
        if fetcher is None:
            fetcher = MediaFetcher.from_options(settings.options.get("fetch") or {})
        return OllamaBackend(
            context.http_for(name, settings),
            fetcher,
            name=name,
            base_url=settings.base_url or DEFAULT_BASE_URL,
            models=options.models,
            headers=settings.auth_headers(),
            matrix=settings.configure_matrix(MATRIX, name),
            owns_fetcher=owns_fetcher,
        )


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(OllamaFactory())
