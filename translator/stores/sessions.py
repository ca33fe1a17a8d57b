"""Session history: the conversation the translator keeps for stateless backends.

A session is two parts: its *instructions* (the leading run of system and
developer messages) and its *turns* (everything after). :class:`SessionStore`
is the small async interface; :class:`MemorySessionStore` is the bounded
in-memory default.

Stored messages are shared, not copied: treat what :meth:`SessionStore.load`
returns as read-only.
"""

from __future__ import annotations

import abc
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..model import (
    DeveloperMessage,
    FunctionMessage,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
)

__all__ = ["MemorySessionStore", "SessionStore", "split_instructions"]


def split_instructions(messages: Sequence[Message]) -> int:
    """How many of ``messages`` form the leading run of system and developer messages."""
    n = 0
    for message in messages:
        if not isinstance(message, SystemMessage | DeveloperMessage):
            break
        n += 1
    return n


class SessionStore(abc.ABC):
    """Where session histories live.

    ``append`` is one unit: the messages it is given are stored together,
    never interleaved with another call's. A leading run of system or
    developer messages in them replaces the session's instructions; the rest
    is added to its turns.
    """

    @abc.abstractmethod
    async def load(self, session_id: str) -> list[Message]:
        """The session's instructions then its turns; empty for an unknown session."""

    @abc.abstractmethod
    async def append(self, session_id: str, messages: Sequence[Message]) -> None:
        """Add ``messages`` to the session, creating it if needed."""

    @abc.abstractmethod
    async def clear(self, session_id: str) -> None:
        """Forget the session."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the store holds."""


class _Session:
    __slots__ = ("instructions", "touched", "turns")

    def __init__(self, touched: float) -> None:
        self.instructions: list[Message] = []
        self.turns: list[Message] = []
        self.touched = touched


class MemorySessionStore(SessionStore):
    """Sessions in memory, bounded three ways.

    - ``idle_ttl`` seconds without a load or an append, and a session expires.
    - At most ``max_sessions``: a new session beyond that evicts the one idle
      the longest.
    - At most ``max_messages`` turn messages per session (the instructions are
      kept apart and not counted). Beyond that the oldest turns are dropped
      whole: the history restarts at a user message, so it never opens with an
      answer or a tool result whose question is gone. When the newest turn
      alone is longer than the cap, its last ``max_messages`` messages are
      kept, less any tool results at their head.

    Every method runs without awaiting, so on one event loop each call is
    atomic: concurrent requests to one session never interleave their
    messages. ``clock`` (default :func:`time.monotonic`) is injectable for tests.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 10_000,
        idle_ttl: float = 3600.0,
        max_messages: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_messages < 1 or idle_ttl <= 0:
            raise ValueError("max_sessions, max_messages and idle_ttl must be positive")
        self.max_sessions = max_sessions
        self.idle_ttl = idle_ttl
        self.max_messages = max_messages
        self.clock = clock
        # Least recently touched first.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def live_sessions(self) -> int:
        """How many sessions are kept now (expired ones are dropped first)."""
        self._expire(self.clock())
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        self._expire(self.clock())
        return session_id in self._sessions

    async def load(self, session_id: str) -> list[Message]:
        session = self._touch(session_id, create=False)
        if session is None:
            return []
        return [*session.instructions, *session.turns]

    async def append(self, session_id: str, messages: Sequence[Message]) -> None:
        session = self._touch(session_id, create=True)
        assert session is not None
        n = split_instructions(messages)
        if n:
            session.instructions = list(messages[:n])
        turns = session.turns
        turns.extend(messages[n:])
        if len(turns) > self.max_messages:
            del turns[: _cut(turns, len(turns) - self.max_messages)]

    async def clear(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _touch(self, session_id: str, *, create: bool) -> _Session | None:
        now = self.clock()
        self._expire(now)
        sessions = self._sessions
        session = sessions.get(session_id)
        if session is None:
            if not create:
                return None
            session = sessions[session_id] = _Session(now)
            while len(sessions) > self.max_sessions:
                sessions.popitem(last=False)
        else:
            session.touched = now
            sessions.move_to_end(session_id)
        return session

    def _expire(self, now: float) -> None:
        sessions = self._sessions
        deadline = now - self.idle_ttl
        while sessions:
            oldest = next(iter(sessions.values()))
            if oldest.touched > deadline:
                break
            sessions.popitem(last=False)


def _cut(turns: list[Message], at_least: int) -> int:
    """Where the kept turns start: the first user message from ``at_least`` on."""
    for i in range(at_least, len(turns)):
        if isinstance(turns[i], UserMessage):
            return i
    i = at_least
    while i < len(turns) - 1 and isinstance(turns[i], ToolMessage | FunctionMessage):
        i += 1
    return i
