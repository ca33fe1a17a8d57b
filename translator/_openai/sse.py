"""Server-sent events, both directions: framing what the server streams, and
parsing what an upstream streams.

Framing: each chunk is one ``data: {json}\\n\\n`` event, the stream ends with
``data: [DONE]``, and an error mid-stream is a ``data: {"error": ...}`` event
with no ``[DONE]`` after it, so that a client sees a failure, never a clean stop.

Parsing: :class:`SSEDecoder` reads events incrementally, as bytes arrive, with
a bound on the size of one event.
"""

from __future__ import annotations

import msgspec

from ..errors import MalformedUpstreamError

__all__ = ["SSE_DONE", "SSEDecoder", "SSEEvent", "data_frame", "sse_frame"]

SSE_DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def sse_frame(chunk: msgspec.Struct, buffer: bytearray | None = None) -> bytes:
    """One SSE event ``data: {...}\\n\\n``.

    ``buffer`` is accepted and not needed: formatting the encoded JSON into
    the frame is cheaper than encoding into a reused buffer and copying it out.
    """
    return b"data: %s\n\n" % _encoder.encode(chunk)


def data_frame(payload: bytes) -> bytes:
    """One SSE event carrying ``payload`` (JSON bytes already encoded)."""
    return b"data: %s\n\n" % payload


class SSEEvent(msgspec.Struct, frozen=True):
    """One dispatched event: its ``event`` type (``message`` by default) and data."""

    data: bytes
    event: str = "message"


class SSEDecoder:
    """An incremental server-sent events parser: feed it bytes as they arrive.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, split anywhere between
    feeds. Comments (``: keepalive``) and ``id``/``retry`` fields are skipped;
    ``data`` lines of one event are joined with ``\\n``. An event (or a line
    still waiting for its end) longer than ``max_event_bytes`` (by default
    :attr:`MAX_EVENT_BYTES`) raises
    :class:`~translator.errors.MalformedUpstreamError`, so that an upstream
    that never ends one cannot grow the translator's memory without limit.
    """

    MAX_EVENT_BYTES = 8 << 20
    """The default bound on one event's data, and on a line not yet ended (8 MiB)."""

    __slots__ = ("_data", "_event", "_max", "_size", "_skip_lf", "_tail")

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._size = 0  # bytes of the pending event's data, a newline per line included
        self._event = "message"
        self._skip_lf = False
        self._max = self.MAX_EVENT_BYTES if max_event_bytes is None else max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        text = self._tail + chunk if self._tail else chunk
        if text.find(b"\r") >= 0:
            self._skip_lf = text[-1] == 13  # a "\r\n" may be split between feeds
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif (
            # The common piece, one whole event of one data line: no line loop.
            text.find(b"\n") == len(text) - 2
            and text[-1] == 10
            and text.startswith(b"data: ")
            and not self._data
        ):
            if len(text) - 8 > self._max:
                raise self._too_long()
            self._tail = b""
            event = self._event
            self._event = "message"
            return [SSEEvent(text[6:-2], event)]
        lines = text.split(b"\n")
        self._tail = lines.pop()
        events: list[SSEEvent] = []
        data = self._data
        size = self._size
        limit = self._max
        for line in lines:
            # Data lines and blank lines inline; the rarer fields through _line.
            if line[:6] == b"data: ":
                data.append(line[6:])
                size += len(line) - 5
            elif line:
                self._size = size
                self._line(line, events)
                size = self._size
            else:
                if data:
                    if size - 1 > limit:
                        raise self._too_long()
                    events.append(SSEEvent(b"\n".join(data), self._event))
                    data = self._data = []
                    size = 0
                self._event = "message"
        self._size = size
        # The unfinished line may hold its "data: " prefix and end besides the data.
        if size + len(self._tail) > limit + 8:
            raise self._too_long()
        return events

    def close(self) -> list[SSEEvent]:
        """At the end of the body: the last event, when only its blank line is missing."""
        events: list[SSEEvent] = []
        if self._tail:
            self._line(self._tail, events)
            self._tail = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                if self._size - 1 > self._max:
                    raise self._too_long()
                events.append(SSEEvent(b"\n".join(self._data), self._event))
            self._data = []
            self._size = 0
            self._event = "message"
            return
        if line[:1] == b":":
            return
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value) + 1
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")

    def _too_long(self) -> MalformedUpstreamError:
        return MalformedUpstreamError(
            f"The upstream sent a server-sent event longer than {self._max} bytes."
        )
