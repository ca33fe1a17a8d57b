"""Decoding OpenAI request bytes into the canonical :class:`ChatRequest`.

The common case is one typed pass into the canonical model. A body it refuses
is decoded again as a :class:`~translator._model.replayed.ReplayedRequest`,
the request as clients may send it (the policy for what clients replay is in
:mod:`translator._model.replayed`), and settled into the canonical request; so
what clients replay costs nothing when none is sent. When that pass fails too,
a shallow one (values kept as raw JSON) leaves out top-level nulls and empty
containers, which ask for nothing, and sets aside top-level fields the model
does not know for the backend's matrix to judge; without either, the error is
the client's. An unknown key anywhere below the top level is refused at its
path. The cross-field rules OpenAI enforces are checked last, on the decoded
request (see :mod:`.rules`).
"""

from __future__ import annotations

import msgspec

from .._model import ChatRequest, set_unknown_fields
from .._model.replayed import EMPTY_IS_ABSENT, NULL_IS_ABSENT, ReplayedRequest, settle
from .invalid import UNREADABLE, decode_error, key_param, not_utf8
from .rules import check_rules

__all__ = ["decode_error", "decode_request"]

_decoder = msgspec.json.Decoder(ChatRequest)
_replayed = msgspec.json.Decoder(ReplayedRequest)
_shallow = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()
_KNOWN = frozenset(ChatRequest.__struct_encode_fields__)
_NULL = b"null"
_UNKNOWN = "Object contains unknown field"
_EMPTY = frozenset({b"[]", b"{}"})


def decode_request(body: bytes | bytearray | memoryview) -> ChatRequest:
    """Decode and validate an OpenAI chat completion request.

    Raises :class:`InvalidRequestError` (400) whose ``param`` names the exact
    place of the first problem, e.g. ``messages[2].content[1].image_url.url``.
    """
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        request = settle(_decode_as_sent(body, exc))
    except UNREADABLE as exc:
        raise decode_error(exc, body) from None
    check_rules(request)
    return request


def _decode_as_sent(
    body: bytes | bytearray | memoryview, exc: msgspec.ValidationError
) -> ReplayedRequest:
    """Decode a body the canonical model refused (``exc``) as clients may send it."""
    if not _unknown_key(exc):  # else this pass would stop at the same key
        try:
            return _replayed.decode(body)
        except msgspec.ValidationError as again:
            exc = again
        except UNREADABLE as unreadable:
            raise decode_error(unreadable, body) from None
    return _decode_shallow(body, exc)


def _unknown_key(exc: msgspec.ValidationError) -> bool:
    """Whether ``exc`` is about a top-level key the model does not know."""
    text = str(exc)
    return text.startswith(_UNKNOWN) and " - at `" not in text


def _is_nothing(key: str, value: msgspec.Raw) -> bool:
    """Whether top-level ``key`` set to ``value`` asks for nothing (null, or an empty container)."""
    raw = bytes(value).strip()
    if raw == _NULL:
        return key in NULL_IS_ABSENT
    return key in EMPTY_IS_ABSENT and raw[:1] + raw[-1:] in _EMPTY and not raw[1:-1].strip()


def _decode_shallow(
    body: bytes | bytearray | memoryview, exc: msgspec.ValidationError
) -> ReplayedRequest:
    """Decode again with top-level fields that ask for nothing left out and unknown ones
    set aside; raise the 400 for ``exc`` when there are none (it is the client's error)."""
    try:
        fields = _shallow.decode(body)
    except UNREADABLE as unreadable:
        # An unknown key names no place; what made the body unreadable does.
        why = unreadable if _unknown_key(exc) else exc
        raise decode_error(why, body, ReplayedRequest) from None
    known = {k: v for k, v in fields.items() if k in _KNOWN and not _is_nothing(k, v)}
    if len(known) == len(fields):
        raise decode_error(exc, body, ReplayedRequest)
    try:
        request = _replayed.decode(_encoder.encode(known))
    except UNREADABLE as again:
        raise decode_error(again, body, ReplayedRequest) from None
    unknown = {k: v for k, v in fields.items() if k not in _KNOWN}
    for key, value in unknown.items():
        try:
            str(value, "utf-8")
        except UnicodeDecodeError:
            raise not_utf8(key_param(key)) from None
    set_unknown_fields(request, unknown)
    return request
