"""Structured logs: every record an event name and its fields, never message content.

Records logged through :func:`log_event` carry ``event`` and ``fields``
attributes; :class:`JSONFormatter` writes them as one JSON object a line, and
plain formatters see ``event key=value ...`` (a value with spaces, quotes or
control characters quoted and escaped).

Whatever logger a record comes from, no value in it can forge a line: the
JSON format escapes it, and :class:`TextFormatter` (``--log-format text``)
escapes every control or line-breaking character of the message (a
traceback after it is written as is).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec

__all__ = ["ACCESS_LOGGER", "JSONFormatter", "TextFormatter", "log_event", "setup_logging"]

ACCESS_LOGGER = "translator.server.access"
"""The logger of the access log: one ``request`` event a request."""

_encoder = msgspec.json.Encoder(enc_hook=str)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (ids, names, counts: never content)."""
    if logger.isEnabledFor(level):
        text = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
        logger.log(level, "%s %s", event, text, extra={"event": event, "fields": fields})


def _text(value: Any) -> str:
    """``value`` for a text log line: as is when plain; else quoted, with quotes,
    backslashes and every control or line-breaking character escaped, so that no
    value (a model name, a path) can end the line or forge another field."""
    text = str(value)
    if text.isprintable() and " " not in text and '"' not in text and text:
        return text
    return '"' + "".join(map(_escape, text)) + '"'


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


class TextFormatter(logging.Formatter):
    """``time level logger message``, one line a record whatever the message holds."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        if line.isprintable():
            return line
        return "".join(c if c.isprintable() else _escape(c) for c in line)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, event and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            entry["event"] = event
            entry.update(getattr(record, "fields", {}))
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def setup_logging(
    level: int = logging.INFO, *, json: bool = False, access: str | None = None
) -> None:
    """Log to stderr, as JSON lines or as text; ``access`` (``"json"``, ``"text"``)
    gives the access log (``translator.server.access``) a format of its own."""
    root = logging.getLogger()
    root.handlers[:] = [_stderr(json)]
    root.setLevel(level)
    access_log = logging.getLogger(ACCESS_LOGGER)
    access_log.handlers[:] = []
    access_log.propagate = True
    if access is not None and access != "off" and (access == "json") != json:
        access_log.handlers[:] = [_stderr(access == "json")]
        access_log.propagate = False


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes, never to a stream it
    kept: one that was swapped and closed since (an embedding program's, a test
    runner's) would turn every later record into a logging error."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def _stderr(json: bool) -> logging.Handler:
    handler = _Stderr()
    if json:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter())
    return handler
