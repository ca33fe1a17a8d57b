"""Keeping credentials out of what upstreams say.

Upstream words that reach a log or a client never carry the credentials the
translator sent: a :class:`Redactor` remembers the values of the credential
headers and query parameters a backend sends (``Authorization``, ``api-key``,
``key``, ...; the :data:`REMEMBERED` most recent) and blanks them out of an
upstream's message. A log line also loses anything that looks like a token
(``Bearer ...``, ``sk-...``), where a false match costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from yarl import URL

__all__ = ["REDACTED", "REMEMBERED", "Redactor"]

CREDENTIAL_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "key",
        "api_key",
        "access_token",
    }
)
"""Header and query parameter names (lower case) whose values are credentials."""
REMEMBERED = 8
"""How many credentials a redactor remembers (the most recent)."""
REDACTED = "[redacted]"

_TOKEN = re.compile(
    r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+|\bsk-[\w\-*.]{6,}|\b((?:api[_-]?)?key=)[^\s\"'&,;]+"
)
"""Anything that looks like a credential, blanked from log lines."""


class Redactor:
    """The credentials one backend sent, and text without them."""

    __slots__ = ("_secrets", "_seen")

    def __init__(self) -> None:
        self._secrets: dict[str, None] = {}  # the credentials sent, oldest first
        self._seen: tuple[object, object] = (None, None)  # the last headers and params scanned

    def remember(self, headers: Mapping[str, str] | None, params: Mapping[str, str] | None) -> None:
        """Note the credentials among ``headers`` and ``params`` (once per pair sent)."""
        if (headers, params) == self._seen:
            return
        self._seen = (headers, params)
        for given in (headers, params):
            for name, value in (given or {}).items():
                if name.lower() not in CREDENTIAL_NAMES:
                    continue
                token = value.strip().partition(" ")[2].strip()
                for secret in (value, token):
                    if len(secret) >= 4 and secret not in self._secrets:
                        self._secrets[secret] = None
        while len(self._secrets) > REMEMBERED:
            del self._secrets[next(iter(self._secrets))]

    def redact(self, text: str, *, tokens: bool = False) -> str:
        """``text`` without the credentials sent; ``tokens`` also blanks anything
        that looks like one (for a log line)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _TOKEN.sub(_redact_token, text) if tokens else text

    def url(self, url: str) -> str:
        """``url`` as a log or a trace may show it: no user info, no credentials."""
        parsed = URL(url)
        if parsed.user is not None or parsed.password is not None:
            parsed = parsed.with_user(None)
        return self.redact(str(parsed), tokens=True)


def _redact_token(match: re.Match[str]) -> str:
    """A token's replacement: its scheme (``Bearer``, ``key=``) kept, its value blanked."""
    scheme, space, key = match.group(1, 2, 3)
    if scheme:
        return f"{scheme}{space}{REDACTED}"
    return f"{key}{REDACTED}" if key else REDACTED
