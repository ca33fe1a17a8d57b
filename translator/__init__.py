"""Translate the OpenAI Chat Completions API to any chat backend, and back.

``import translator`` is cheap: it loads the canonical model, the codec and
the stores, never a backend, a connection or a file. The aiohttp server, the
config loader and the plugin manager load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._backend import Backend, BackendContext, BackendFactory, BackendSettings
from ._compat import Matrix, Mode, Report, Rule, Treatment
from ._core import Completion, Stream, Translator
from ._hookspecs import hookimpl
from ._lazy import lazy_exports as _lazy_exports
from ._model import ChatChunk, ChatRequest, ChatResponse, Usage
from ._openai import decode_request, encode_request, encode_response
from ._version import __version__ as __version__
from .errors import (
    InvalidRequestError,
    ModelNotFoundError,
    TranslatorError,
    UnsupportedFieldError,
    UpstreamError,
)
from .stores import (
    DiskFileStore,
    FileObject,
    FileStore,
    MemoryFileStore,
    MemorySessionStore,
    SessionStore,
)

if TYPE_CHECKING:
    from ._plugins import get_plugin_manager
    from .config import Config, load_config
    from .server import create_app


__all__ = [
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendSettings",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Completion",
    "Config",
    "DiskFileStore",
    "FileObject",
    "FileStore",
    "InvalidRequestError",
    "Matrix",
    "MemoryFileStore",
    "MemorySessionStore",
    "Mode",
    "ModelNotFoundError",
    "Report",
    "Rule",
    "SessionStore",
    "Stream",
    "Translator",
    "TranslatorError",
    "Treatment",
    "UnsupportedFieldError",
    "UpstreamError",
    "Usage",
    "create_app",
    "decode_request",
    "encode_request",
    "encode_response",
    "get_plugin_manager",
    "hookimpl",
    "load_config",
]

# Names whose modules pull in aiohttp or the plugin machinery load on first use.
_LAZY = {
    "Config": ".config",
    "create_app": ".server",
    "get_plugin_manager": "._plugins",
    "load_config": ".config",
}

__getattr__ = _lazy_exports(__name__, _LAZY)
