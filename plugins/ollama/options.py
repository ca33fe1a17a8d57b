"""The ``options`` table of an ``ollama`` backend, checked when the backend is built.

::

    [backends.local.options]
    models = { "gpt-4o" = "llava:13b" }     # client name -> Ollama name
    fetch = { allow = ["10.0.0.0/8"], max_bytes = 20971520, timeout = 30, max_redirects = 3 }

A key this table does not know (``bogus = 1``, a misspelt ``modles``) is a
configuration error naming it, not silently nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from translator.plugin_api import DEFAULT_MAX_BYTES, convert_options

__all__ = ["FetchOptions", "Options", "parse_options"]


class FetchOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``fetch``: how remote images are fetched when the translator shares no fetcher."""

    allow: list[str] = msgspec.field(default_factory=list)
    """Networks (CIDR) or hosts allowed although private or loopback."""
    max_bytes: Annotated[int, Meta(gt=0)] = DEFAULT_MAX_BYTES
    timeout: Annotated[float, Meta(gt=0)] = 30.0
    max_redirects: Annotated[int, Meta(ge=0)] = 3


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` table of an ``ollama`` backend."""

    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Client model name -> Ollama model name; a name not listed is sent as it is."""
    fetch: FetchOptions | None = None


def parse_options(options: Mapping[str, Any], *, backend: str = "ollama") -> Options:
    """``options`` checked and typed; :class:`ValueError` naming the bad key otherwise."""
    return convert_options(options, Options, backend)
