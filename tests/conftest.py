"""Shared test set-up.

aioresponses 0.7.9 builds ``ClientResponse`` objects without the
``stream_writer`` argument that aiohttp 3.14 requires; the shim below supplies
one, so mocked replies work on every aiohttp this project supports.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse

if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _MockedResponse(ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)

    aioresponses.core.ClientResponse = _MockedResponse  # type: ignore[misc]
