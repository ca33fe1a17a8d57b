"""Decoding OpenAI request bytes into the canonical :class:`ChatRequest`.

The common case is one typed pass. A second, shallow pass (values kept as raw
JSON) runs only when the body may hold what the typed pass must not see: a
top-level field the model does not know, set aside for the backend's matrix to
judge, or a top-level null or empty container, which asks for nothing and is
left out (see :mod:`translator.model.replayed`, the policy for what clients
replay). A body that may carry replayed message fields has them taken off and
kept beside the request for the matrix to report. An unknown key anywhere
below the top level is refused at its path. The cross-field rules OpenAI
enforces are checked last, on the decoded request (see :mod:`.rules`).
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from ..model import ChatRequest, set_unknown_fields
from ..model.replayed import EMPTY_IS_ABSENT, NULL_IS_ABSENT, take_replayed
from ..model.request import set_replayed
from .invalid import UNREADABLE, decode_error, key_param, not_utf8
from .rules import check_rules

__all__ = ["decode_error", "decode_request"]

_decoder = msgspec.json.Decoder(ChatRequest)
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
        request = _decode_shallow(body, exc)
    except UNREADABLE as exc:
        raise decode_error(exc, body) from None
    # Cheap byte searches say whether an empty container or a replayed field may be there.
    if b"[]" in body or b"{}" in body:
        _forget_empty(request)
    if b"null" in body or b'"annotations"' in body or b'"reasoning' in body or b'"tool"' in body:
        taken = take_replayed(request.messages)
        if taken:
            set_replayed(request, taken)
    check_rules(request)
    return request


def _forget_empty(request: ChatRequest) -> None:
    for name in EMPTY_IS_ABSENT:
        value = getattr(request, name)
        if (type(value) is list or type(value) is dict) and not value:
            setattr(request, name, UNSET)


def _is_nothing(key: str, value: msgspec.Raw) -> bool:
    """Whether top-level ``key`` set to ``value`` asks for nothing (null, or an empty container)."""
    raw = bytes(value).strip()
    if raw == _NULL:
        return key in NULL_IS_ABSENT
    return key in EMPTY_IS_ABSENT and raw[:1] + raw[-1:] in _EMPTY and not raw[1:-1].strip()


def _decode_shallow(
    body: bytes | bytearray | memoryview, exc: msgspec.ValidationError
) -> ChatRequest:
    """Decode again with top-level fields that ask for nothing left out and unknown ones
    set aside; raise the 400 for ``exc`` when there are none (it is the client's error)."""
    try:
        fields = _shallow.decode(body)
    except UNREADABLE as unreadable:
        # An unknown key names no place; what made the body unreadable does.
        unknown_key = str(exc).startswith(_UNKNOWN) and " - at `" not in str(exc)
        raise decode_error(unreadable if unknown_key else exc, body) from None
    known = {k: v for k, v in fields.items() if k in _KNOWN and not _is_nothing(k, v)}
    if len(known) == len(fields):
        raise decode_error(exc, body)
    try:
        request = _decoder.decode(_encoder.encode(known))
    except UNREADABLE as again:
        raise decode_error(again, body) from None
    unknown = {k: v for k, v in fields.items() if k not in _KNOWN}
    for key, value in unknown.items():
        try:
            str(value, "utf-8")
        except UnicodeDecodeError:
            raise not_utf8(key_param(key)) from None
    set_unknown_fields(request, unknown)
    return request
