"""The ``vlm-agent`` backend plugin: chat completions answered by VLM Run agents.

The agent server runs jobs: an execution is posted, then polled until it is
finished. This plugin turns a chat completion into one execution and the
execution's result back into a chat completion, so that a client of the
OpenAI SDK never sees the difference.

Configuration (a ``[backends.NAME]`` table with ``plugin = "vlm-agent"``):
``base_url`` (default ``https://agent.vlm.run/v1``), ``api_key`` or
``api_key_env``, the HTTP timeouts and ``retries``, ``mode``, ``matrix``
overrides (``stream = "emulated"`` streams the whole answer), and the
``options`` of :class:`~translator_plugins.vlm_agent.backend.Options`.
"""

from __future__ import annotations

from collections.abc import Callable

from translator.plugin_api import (
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    hookimpl,
)

from .answer import ExecutionFailedError
from .backend import DEFAULT_BASE_URL, Options, VlmAgentBackend
from .matrix import MATRIX
from .prompt import DEFAULT_MODEL, build_execute

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MATRIX",
    "ExecutionFailedError",
    "Options",
    "VlmAgentBackend",
    "VlmAgentFactory",
    "build_execute",
    "register_backends",
]


class VlmAgentFactory:
    plugin_name = "vlm-agent"
    description = "VLM Run agents: each chat completion runs as an agent execution."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        options = settings.options_as(Options, name)
        backend = VlmAgentBackend(
            name,
            http=context.http_for(name, settings, backoff_base=options.retry_backoff),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            api_key=settings.resolved_api_key(),
            options=options,
            deadline=settings.total_timeout,
            files=context.files,
            shared=context.cache,
        )
        backend.matrix = settings.configure_matrix(backend.matrix, name)
        return backend


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(VlmAgentFactory())
