"""The ``options`` table of an ``openai-compatible`` backend."""

from __future__ import annotations

import msgspec

from translator.plugin_api import (
    Treatment,
)

__all__ = ["Options"]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` table of an ``openai-compatible`` backend."""

    headers: dict[str, str] = msgspec.field(default_factory=dict)
    model: str | dict[str, str] | None = None
    unknown_fields: Treatment = Treatment.SUPPORTED
    keeps_sessions: bool | None = None
