"""Session histories in one SQLite file: the durable local default.

A restart loses nothing acknowledged: each ``append`` is one transaction,
committed to the write-ahead log before it returns, so a crash or restart of
the process keeps it (``synchronous=NORMAL``: the log is synced to disk at
checkpoints, so a power cut may lose the last turns; ``FULL`` would cost an
``fsync`` per turn, about 6x the turn's time on a busy disk). Several
processes on one machine may share the file (``translator serve --workers``):
``append`` takes the write lock first (``BEGIN IMMEDIATE``), so concurrent
appends to one session are serialised whole, never interleaved.

SQLite is blocking, so every call runs in the store's own worker thread,
off the event loop, on one connection.

Bounds, as :class:`~translator.stores.MemorySessionStore`'s: ``idle_ttl``
(wall-clock seconds since the last load or append, so it holds across
restarts; a load renews it only past half of it, so that reads stay reads),
``max_sessions`` (the longest idle are evicted, checked every 256 appends),
``max_messages`` turn messages per session, and ``max_bytes`` of messages
per session. Turns are dropped oldest first and whole, as there.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import msgspec

from .._model import Message
from ..errors import StoreUnavailableError
from ._sessions import SessionStore, cut_point, role_of, split_instructions

__all__ = ["SQLiteSessionStore"]

T = TypeVar("T")

log = logging.getLogger("translator.stores")

_encoder = msgspec.json.Encoder()
_history = msgspec.json.Decoder(list[Message])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    instructions BLOB NOT NULL DEFAULT '',
    touched REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_touched ON sessions (touched);
CREATE TABLE IF NOT EXISTS turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    role TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_session ON turns (session, seq);
"""

_SWEEP_EVERY = 256
"""Appends between two sweeps of expired and surplus sessions."""


class SQLiteSessionStore(SessionStore):
    """Sessions in the SQLite database at ``path`` (created, with its directory, if needed)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_sessions: int = 100_000,
        idle_ttl: float = 7 * 24 * 3600.0,
        max_messages: int = 200,
        max_bytes: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if min(max_sessions, max_messages, max_bytes) < 1 or idle_ttl <= 0:
            raise ValueError("max_sessions, max_messages, max_bytes and idle_ttl must be positive")
        self.path = Path(path)
        self.max_sessions = max_sessions
        self.idle_ttl = idle_ttl
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="translator-sessions")
        self._db: sqlite3.Connection | None = None
        self._appends = 0

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, work)
        except sqlite3.Error as exc:  # a locked, full or vanished database
            log.warning("session store %s: %s", self.path, exc)
            raise StoreUnavailableError(
                "The session store is unavailable; try again shortly."
            ) from exc

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            db = self._db = self._open()
        return work(db)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        # Switching to WAL and creating the schema do not wait on SQLite's busy
        # handler when another process is opening the same file: retry briefly.
        for attempt in range(100):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                return db
            except sqlite3.OperationalError:
                if attempt == 99:
                    db.close()
                    raise
                time.sleep(0.02)
        return db

    # -- the interface ---------------------------------------------------------

    async def load(self, session_id: str) -> list[Message]:
        return await self._run(lambda db: self._load(db, session_id))

    async def append(self, session_id: str, messages: Sequence[Message]) -> None:
        n = split_instructions(messages)
        instructions = _encoder.encode(list(messages[:n])) if n else None
        turns = [(role_of(m), _encoder.encode(m)) for m in messages[n:]]
        self._appends += 1
        sweep = self._appends % _SWEEP_EVERY == 1
        await self._run(lambda db: self._append(db, session_id, instructions, turns, sweep))

    async def ping(self) -> None:
        """The database opens and answers (else :class:`StoreUnavailableError`)."""
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def clear(self, session_id: str) -> None:
        def clear(db: sqlite3.Connection) -> None:
            with _transaction(db, "BEGIN IMMEDIATE"):
                _delete(db, session_id)

        await self._run(clear)

    async def aclose(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(close)
        self._thread.shutdown(wait=True)

    # -- in the worker thread ----------------------------------------------------

    def _load(self, db: sqlite3.Connection, session_id: str) -> list[Message]:
        now = self.clock()
        with _transaction(db, "BEGIN"):  # a read: one snapshot, no write lock
            row = db.execute(
                "SELECT instructions, touched FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None or row[1] <= now - self.idle_ttl:
                return []  # an expired session is removed by the next append or sweep
            instructions, touched = row
            turns = [
                body
                for (body,) in db.execute(
                    "SELECT body FROM turns WHERE session = ? ORDER BY seq", (session_id,)
                )
            ]
        if touched < now - self.idle_ttl / 2:  # renewed, but not written on every load
            db.execute(
                "UPDATE sessions SET touched = ? WHERE id = ? AND touched < ?",
                (now, session_id, now),
            )
        parts = [instructions[1:-1], *turns] if instructions else turns
        return _history.decode(b"[%s]" % b",".join(parts)) if parts else []

    def _append(
        self,
        db: sqlite3.Connection,
        session_id: str,
        instructions: bytes | None,
        turns: list[tuple[str, bytes]],
        sweep: bool,
    ) -> None:
        now = self.clock()
        with _transaction(db, "BEGIN IMMEDIATE"):
            row = db.execute("SELECT touched FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is not None and row[0] <= now - self.idle_ttl:
                _delete(db, session_id)  # expired: this append starts it afresh
            db.execute(
                "INSERT INTO sessions (id, instructions, touched) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET touched = excluded.touched"
                + (", instructions = excluded.instructions" if instructions is not None else ""),
                (session_id, instructions or b"", now),
            )
            db.executemany(
                "INSERT INTO turns (session, role, body) VALUES (?, ?, ?)",
                [(session_id, role, body) for role, body in turns],
            )
            self._trim(db, session_id)
            if sweep:
                self._sweep(db, now)

    def _trim(self, db: sqlite3.Connection, session_id: str) -> None:
        (fixed,) = db.execute(
            "SELECT length(instructions) FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT seq, role, length(body) FROM turns WHERE session = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
        at_least = max(0, len(rows) - self.max_messages)
        excess = fixed + sum(row[2] for row in rows) - self.max_bytes
        i = 0
        while i < len(rows) and (i < at_least or excess > 0):
            excess -= rows[i][2]
            i += 1
        if i == 0:
            return
        cut = cut_point([row[1] for row in rows], i)
        if cut:
            db.execute(
                "DELETE FROM turns WHERE session = ? AND seq < ?", (session_id, rows[cut][0])
            )

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Forget expired sessions, then the longest idle beyond ``max_sessions``."""
        db.execute(
            "DELETE FROM sessions WHERE touched <= ? OR id IN (SELECT id FROM sessions "
            "ORDER BY touched DESC LIMIT -1 OFFSET ?)",
            (now - self.idle_ttl, self.max_sessions),
        )
        db.execute("DELETE FROM turns WHERE session NOT IN (SELECT id FROM sessions)")


def _delete(db: sqlite3.Connection, session_id: str) -> None:
    db.execute("DELETE FROM turns WHERE session = ?", (session_id,))
    db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


class _transaction:
    """``BEGIN ...`` then ``COMMIT``, or ``ROLLBACK`` on an error."""

    def __init__(self, db: sqlite3.Connection, begin: str) -> None:
        self.db = db
        self.begin = begin

    def __enter__(self) -> None:
        self.db.execute(self.begin)

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
