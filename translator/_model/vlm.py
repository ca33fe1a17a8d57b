"""The VLM agents extensions: ``vlmrun.domain`` and ``vlmrun.metadata``.

Defaults are the service's documented ones: ``environment`` is ``prod`` and
every ``allow_*`` flag is true unless the client says otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import UNSET, UnsetType

from .strict import Strict

__all__ = ["Environment", "RequestMetadata", "VlmRun"]

Environment = Literal["dev", "staging", "prod"]


class RequestMetadata(Strict):
    """Request metadata sent as ``extra_body={"vlmrun": {"metadata": ...}}``."""

    environment: Environment = "prod"
    session_id: str | None = None
    allow_training: bool = True
    allow_retention: bool = True
    allow_logging: bool = True
    extra: dict[str, Any] | None = None


class VlmRun(Strict):
    """The ``vlmrun`` object of ``extra_body``."""

    domain: str | UnsetType = UNSET
    metadata: RequestMetadata | UnsetType = UNSET
