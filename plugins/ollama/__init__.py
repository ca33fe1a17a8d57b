"""The ``ollama`` plugin: a local model through Ollama's native ``/api/chat``.

Configuration (``[backends.NAME]`` with ``plugin = "ollama"``)::

    base_url = "http://localhost:11434"
    [backends.NAME.options]
    models = { "gpt-4o" = "llava:13b" }     # client name -> Ollama name
    fetch = { allow = ["10.0.0.0/8"], max_bytes = 20971520, timeout = 30 }

``fetch`` is used only when the translator gives no shared media fetcher.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from translator import hookimpl
from translator.backend import Backend, BackendContext, BackendFactory, BackendSettings
from translator.compat import Matrix
from translator.fetch import MediaFetcher
from translator.http import HttpPolicy

from .backend import DEFAULT_BASE_URL, OllamaBackend
from .matrix import MATRIX

__all__ = ["MATRIX", "OllamaBackend", "OllamaFactory", "register_backends"]


class OllamaFactory:
    plugin_name = "ollama"
    description = "A local model through Ollama's native /api/chat (NDJSON streaming)."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        policy = HttpPolicy(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            total_timeout=settings.total_timeout,
            retries=settings.retries,
        )
        fetcher = context.fetcher
        owns_fetcher = fetcher is None
        if fetcher is None:
            fetcher = MediaFetcher.from_options(settings.options.get("fetch") or {})
        headers = {}
        api_key = settings.api_key or (
            os.environ.get(settings.api_key_env) if settings.api_key_env else None
        )
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        matrix = MATRIX.with_overrides(settings.matrix_overrides())
        matrix = _renamed(matrix, name).with_mode(settings.mode)
        return OllamaBackend(
            context.http.bind(name, policy),
            fetcher,
            name=name,
            base_url=settings.base_url or DEFAULT_BASE_URL,
            models=settings.options.get("models") or {},
            headers=headers,
            matrix=matrix,
            owns_fetcher=owns_fetcher,
        )


def _renamed(matrix: Matrix, name: str) -> Matrix:
    if name == matrix.backend:
        return matrix
    return Matrix(name, matrix.rules, unknown=matrix.unknown, mode=matrix.mode)


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(OllamaFactory())
