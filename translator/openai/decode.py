"""Decoding OpenAI request bytes into the canonical :class:`ChatRequest`.

The common case is one typed pass. Only when the body carries top-level fields
the model does not know does a second, shallow pass (values kept as raw JSON)
set them aside for the backend's matrix to judge.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import InvalidRequestError
from ..model import ChatRequest, set_unknown_fields

__all__ = ["decode_error", "decode_request"]

_decoder = msgspec.json.Decoder(ChatRequest)
_shallow = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()
_KNOWN = frozenset(ChatRequest.__struct_encode_fields__)

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = "Object contains unknown field"


def decode_request(body: bytes | bytearray | memoryview) -> ChatRequest:
    """Decode and validate an OpenAI chat completion request.

    Raises :class:`InvalidRequestError` (400) whose ``param`` names the exact
    place of the first problem, e.g. ``messages[2].content[1].image_url.url``.
    """
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        if not str(exc).startswith(_UNKNOWN) or " - at `" in str(exc):
            raise decode_error(exc) from None
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    return _decode_with_unknown(body)


def _decode_with_unknown(body: bytes | bytearray | memoryview) -> ChatRequest:
    fields = _shallow.decode(body)
    known = {k: v for k, v in fields.items() if k in _KNOWN}
    unknown = {k: v for k, v in fields.items() if k not in _KNOWN}
    try:
        request = _decoder.decode(_encoder.encode(known))
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    set_unknown_fields(request, unknown)
    return request


def decode_error(exc: msgspec.DecodeError) -> InvalidRequestError:
    """The 400 for a msgspec decode or validation failure, with ``param`` as a path."""
    if not isinstance(exc, msgspec.ValidationError):
        return InvalidRequestError(
            "We could not parse the JSON body of your request: "
            f"{exc}. The API expects a JSON object as the request body.",
            code="invalid_json",
        )
    match = _AT.match(str(exc))
    assert match is not None
    message, path = match["msg"], _param(match["path"])
    missing = _MISSING.match(message)
    if missing is not None:
        param = f"{path}.{missing['field']}" if path else missing["field"]
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
    if path is None:
        if message.startswith("Expected `object`"):
            return InvalidRequestError(
                f"The request body must be a JSON object: {message[0].lower()}{message[1:]}.",
            )
        return InvalidRequestError(f"Invalid request: {message}.")
    if message.startswith("Invalid value"):
        return InvalidRequestError(f"{message} for '{path}'.", param=path, code="invalid_value")
    return InvalidRequestError(f"Invalid type or value for '{path}': {message}.", param=path)


def _param(path: str | None) -> str | None:
    """``$.messages[0].content`` (without the ``$``) becomes ``messages[0].content``."""
    if not path:
        return None
    return path[1:] if path.startswith(".") else path
