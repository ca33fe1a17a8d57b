"""The base of every request-side struct.

A key the client sent that the model does not know is refused, never dropped:
decoding fails at the key's path (``messages[0].foo``) and the caller gets a
400 naming it, as OpenAI does. A refused key costs nothing when none is sent.
Response-side structs stay tolerant: backends decode upstream replies with
them, and upstreams add fields of their own.
"""

from __future__ import annotations

import msgspec

__all__ = ["Strict"]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """A request-side struct: unknown keys are an error."""
