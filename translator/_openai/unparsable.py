"""Saying, in this project's own words, why a body is not JSON at all.

msgspec's wording for a body it cannot parse differs between its releases (a
byte that is not UTF-8 was a ``UnicodeDecodeError`` in one and a
``DecodeError`` reading "Invalid UTF-8 encoded string" in the next), so the
message a client gets is never built from it. Only what can be established
without reading a dependency's text is said: the body is empty, its text is
not UTF-8 (checked here), it is nested deeper than the decoder goes (the
exception's type), or it is not valid JSON, with the byte where it stops
being JSON, whether it ends too early, or whether more text follows a complete
value (all three from the standard library's parser positions, never its
messages). This runs only after decoding failed.
"""

from __future__ import annotations

import json

__all__ = ["NOT_UTF8", "why_unparsable"]

NOT_UTF8 = "its text is not valid UTF-8"
NESTED_TOO_DEEPLY = "it is nested too deeply"
NOT_JSON = "it is not valid JSON"

_scanner = json.JSONDecoder()


def why_unparsable(body: bytes | bytearray | memoryview | None, too_deep: bool = False) -> str:
    """Why ``body`` could not be parsed, as a clause: ``it is not valid JSON: ...``.

    ``too_deep`` says the decoder gave up on nesting (a ``RecursionError``).
    Without the body only that, or the plain "not valid JSON", can be said.
    """
    if body is None:
        return NESTED_TOO_DEEPLY if too_deep else NOT_JSON
    data = bytes(body)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{NOT_UTF8} at byte {exc.start}"
    if too_deep:
        return NESTED_TOO_DEEPLY
    stripped = text.strip()
    if not stripped:
        return "the body is empty"
    return f"{NOT_JSON}: {_where(stripped, len(text) - len(text.lstrip()))}"


def _where(text: str, offset: int) -> str:
    """Where ``text`` (leading blanks removed, ``offset`` of them) stops being JSON."""
    try:
        _value, end = _scanner.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            return "it ends before the value is complete"
        return f"unexpected text at character {exc.pos + offset}"
    except (RecursionError, ValueError):
        return "it could not be read as a value"
    if end < len(text):
        return f"more text follows the value, at character {end + offset}"
    return "it could not be read as a value"
