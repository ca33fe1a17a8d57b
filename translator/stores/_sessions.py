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

import msgspec

from .._model import (
    AssistantMessage,
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

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`OSError` when the store cannot be reached (``/ready`` asks)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the store holds."""


class _Session:
    __slots__ = ("instructions", "sizes", "touched", "turns", "used")

    def __init__(self, touched: float) -> None:
        self.instructions: list[Message] = []
        self.turns: list[Message] = []
        self.sizes: list[int] = []  # each turn message's encoded size, beside ``turns``
        self.used = 0  # bytes: instructions and turns
        self.touched = touched

    def drop_turns(self, n: int) -> int:
        """Drop the ``n`` oldest turn messages; the bytes freed."""
        freed = sum(self.sizes[:n])
        del self.turns[:n], self.sizes[:n]
        self.used -= freed
        return freed


class MemorySessionStore(SessionStore):
    """Sessions in memory, bounded four ways.

    - ``idle_ttl`` seconds without a load or an append, and a session expires.
    - At most ``max_sessions``: a new session beyond that evicts the one idle
      the longest.
    - At most ``max_messages`` turn messages per session (the instructions are
      kept apart and not counted).
    - At most ``max_bytes`` of messages in all (as JSON): beyond that the
      sessions idle the longest are evicted; a single session larger than that
      loses its oldest turns.

    Turns are dropped oldest first and whole: the kept history restarts at a
    user message, so it never opens with an answer or a tool result whose
    question is gone. When the newest turn alone is over a bound, its tail is
    kept, less any tool results at its head; the newest message always stays.

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
        max_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(max_sessions, max_messages, max_bytes) < 1 or idle_ttl <= 0:
            raise ValueError("max_sessions, max_messages, max_bytes and idle_ttl must be positive")
        self.max_sessions = max_sessions
        self.idle_ttl = idle_ttl
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.clock = clock
        self.used = 0
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
        before = session.used
        if n:
            old = sum(map(_size, session.instructions))
            session.instructions = list(messages[:n])
            session.used += sum(map(_size, session.instructions)) - old
        sizes = [_size(m) for m in messages[n:]]
        session.turns.extend(messages[n:])
        session.sizes.extend(sizes)
        session.used += sum(sizes)
        turns = session.turns
        if len(turns) > self.max_messages:
            session.drop_turns(_cut(turns, len(turns) - self.max_messages))
        self.used += session.used - before
        if self.used > self.max_bytes:
            self._shrink(session)

    async def clear(self, session_id: str) -> None:
        self._drop(self._sessions.pop(session_id, None))

    def _shrink(self, current: _Session) -> None:
        """Fit ``max_bytes``: evict the longest idle sessions, then ``current``'s oldest turns."""
        sessions = self._sessions
        while self.used > self.max_bytes and len(sessions) > 1:
            self._drop(sessions.popitem(last=False)[1])
        if self.used <= self.max_bytes:
            return
        excess = self.used - self.max_bytes
        at_least = 0
        while excess > 0 and at_least < len(current.sizes):
            excess -= current.sizes[at_least]
            at_least += 1
        self.used -= current.drop_turns(_cut(current.turns, at_least))

    def _drop(self, session: _Session | None) -> None:
        if session is not None:
            self.used -= session.used

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
                self._drop(sessions.popitem(last=False)[1])
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
            self._drop(sessions.popitem(last=False)[1])


_encoder = msgspec.json.Encoder()


def _size(message: Message) -> int:
    return len(_encoder.encode(message))


_ROLES: dict[type, str] = {
    SystemMessage: "system",
    DeveloperMessage: "developer",
    UserMessage: "user",
    AssistantMessage: "assistant",
    ToolMessage: "tool",
    FunctionMessage: "function",
}


def role_of(message: Message) -> str:
    """The message's ``role``."""
    return _ROLES[type(message)]


def _cut(turns: list[Message], at_least: int) -> int:
    return cut_point([_ROLES[type(m)] for m in turns], at_least)


def cut_point(roles: Sequence[str], at_least: int) -> int:
    """Where the kept turns start, given their ``roles``, to drop at least ``at_least``.

    The first user message from ``at_least`` on; with none, the tail from
    ``at_least`` (the newest message always kept) less any tool results at its head.
    """
    for i in range(at_least, len(roles)):
        if roles[i] == "user":
            return i
    i = max(0, min(at_least, len(roles) - 1))
    while i < len(roles) - 1 and roles[i] in ("tool", "function"):
        i += 1
    return i
