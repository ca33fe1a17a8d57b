"""Decoding OpenAI request bytes into the canonical :class:`ChatRequest`.

The common case is one typed pass. Only when the body carries top-level fields
the model does not know does a second, shallow pass (values kept as raw JSON)
set them aside for the backend's matrix to judge. An unknown key anywhere
below the top level is refused at its path. The cross-field rules OpenAI
enforces are checked last, on the decoded request (see :mod:`.rules`).
"""

from __future__ import annotations

import msgspec

from ..model import ChatRequest, set_unknown_fields
from .invalid import UNREADABLE, decode_error, key_param, not_utf8
from .rules import check_rules

__all__ = ["decode_error", "decode_request"]

_decoder = msgspec.json.Decoder(ChatRequest)
_shallow = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()
_KNOWN = frozenset(ChatRequest.__struct_encode_fields__)
_UNKNOWN = "Object contains unknown field"


def decode_request(body: bytes | bytearray | memoryview) -> ChatRequest:
    """Decode and validate an OpenAI chat completion request.

    Raises :class:`InvalidRequestError` (400) whose ``param`` names the exact
    place of the first problem, e.g. ``messages[2].content[1].image_url.url``.
    """
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        if not str(exc).startswith(_UNKNOWN) or " - at `" in str(exc):
            raise decode_error(exc, body) from None
        request = _decode_with_unknown(body)
    except UNREADABLE as exc:
        raise decode_error(exc, body) from None
    check_rules(request)
    return request


def _decode_with_unknown(body: bytes | bytearray | memoryview) -> ChatRequest:
    try:
        fields = _shallow.decode(body)
        known = {k: v for k, v in fields.items() if k in _KNOWN}
        request = _decoder.decode(_encoder.encode(known))
    except UNREADABLE as exc:
        raise decode_error(exc, body) from None
    unknown = {k: v for k, v in fields.items() if k not in _KNOWN}
    for key, value in unknown.items():
        try:
            str(value, "utf-8")
        except UnicodeDecodeError:
            raise not_utf8(key_param(key)) from None
    set_unknown_fields(request, unknown)
    return request
