"""Hook specifications for translator plugins. Implement them with ``translator.hookimpl``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._backend import BackendFactory
    from ._model import ChatRequest, ChatResponse

hookspec = pluggy.HookspecMarker("translator")
hookimpl = pluggy.HookimplMarker("translator")


@hookspec
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    """Call ``register(factory)`` once for each backend plugin this package provides."""


@hookspec
def adjust_request(request: ChatRequest, backend: str) -> None:
    """Adjust a decoded request in place, before the backend's matrix is applied. Keep it cheap."""


@hookspec
def adjust_response(response: ChatResponse, request: ChatRequest, backend: str) -> None:
    """Adjust a backend's whole response in place, before it is encoded. Keep it cheap."""
