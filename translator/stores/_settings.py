"""Which stores to use: the ``[stores]`` table, and :func:`open_stores` to build them.

::

    [stores]
    sessions = "local"            # "memory" | "local" | "redis://host:6379/0" | "rediss://..."
    files = "local"               # the same choices
    prefix = "translator:"        # Redis keys start with it: one Redis, many deployments
    password_env = "REDIS_PASSWORD"   # the Redis password, from this variable
    timeout = 2.0                 # seconds a store may take before the request gets a 503
    session_ttl = 86400.0         # seconds a session is kept after its last use
    session_max_messages = 200    # turn messages kept per session
    file_ttl = 0                  # seconds a file is kept in Redis (0: until deleted)

``local`` (the default) is durable: files on disk in the data directory,
sessions in ``sessions.sqlite3`` there; a restart loses nothing. ``memory``
keeps everything in the process (tests, or when nothing need survive). A
Redis URL shares the store between every process and replica; when files are
in Redis, the backends' shared cache (the agent's uploaded-file ids) is too.
Embedders may build the same objects through :func:`open_stores`, or the
store classes directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from ._files import DiskFileStore, FileStore, MemoryFileStore
from ._sessions import MemorySessionStore, SessionStore
from ._sqlite_sessions import SQLiteSessionStore

if TYPE_CHECKING:
    from .._backend import SharedCache
    from ._redis_link import RedisLink

__all__ = ["REDIS_SCHEMES", "StoreSettings", "Stores", "open_stores"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""How a store setting that names a Redis begins."""


class StoreSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[stores]`` table."""

    sessions: str = "local"
    """``memory``, ``local`` (SQLite in the data directory) or a Redis URL."""
    files: str = "local"
    """``memory``, ``local`` (the data directory) or a Redis URL."""
    prefix: str = "translator:"
    password_env: str | None = None
    """An environment variable holding the Redis password (kept out of the URL and the file)."""
    timeout: Annotated[float, Meta(gt=0)] = 2.0
    """Seconds one store operation may take; past it, or with the store down, a 503."""
    session_ttl: Annotated[float, Meta(gt=0)] = 86400.0
    session_max_messages: Annotated[int, Meta(gt=0)] = 200
    file_ttl: Annotated[float, Meta(ge=0)] = 0.0
    """Seconds a file is kept in Redis after its upload; 0 keeps it until deleted."""

    def check(self) -> None:
        """Raise :class:`ValueError` naming the key whose value is no store."""
        for key in ("sessions", "files"):
            value = getattr(self, key)
            if value not in ("memory", "local") and not value.startswith(REDIS_SCHEMES):
                raise ValueError(
                    f"stores.{key}: {value!r} is no store; use 'memory', 'local' or a "
                    "redis:// or rediss:// URL"
                )

    @property
    def shared(self) -> bool:
        """Whether every process sees the same sessions and files (none is in memory)."""
        return "memory" not in (self.sessions, self.files)


class Stores:
    """The stores :func:`open_stores` built; :meth:`aclose` closes what they opened."""

    def __init__(
        self,
        sessions: SessionStore,
        files: FileStore,
        cache: SharedCache | None,
        links: list[RedisLink],
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.cache = cache
        self._links = links

    async def aclose(self) -> None:
        """Close the session store and the Redis connections."""
        await self.sessions.aclose()
        for link in self._links:
            await link.aclose()


def open_stores(
    settings: StoreSettings, data_dir: str | Path, *, environ: Mapping[str, str] | None = None
) -> Stores:
    """The stores ``settings`` name; ``local`` ones keep their data in ``data_dir``.

    Raises :class:`ValueError` for a setting that names no store, or a Redis
    URL without the ``redis`` package installed. Nothing is connected yet.
    """
    settings.check()
    directory = Path(data_dir).expanduser()
    links: dict[str, RedisLink] = {}

    def link(key: str, url: str) -> RedisLink:
        if url not in links:
            links[url] = _link(key, url, settings, os.environ if environ is None else environ)
        return links[url]

    sessions: SessionStore
    if settings.sessions == "memory":
        sessions = MemorySessionStore(
            idle_ttl=settings.session_ttl, max_messages=settings.session_max_messages
        )
    elif settings.sessions == "local":
        sessions = SQLiteSessionStore(
            directory / "sessions.sqlite3",
            idle_ttl=settings.session_ttl,
            max_messages=settings.session_max_messages,
        )
    else:
        from ._redis_sessions import RedisSessionStore

        sessions = RedisSessionStore(
            link("sessions", settings.sessions),
            idle_ttl=settings.session_ttl,
            max_messages=settings.session_max_messages,
        )
    files: FileStore
    cache: SharedCache | None = None
    if settings.files == "memory":
        files = MemoryFileStore()
    elif settings.files == "local":
        files = DiskFileStore(directory)
    else:
        from ._redis_cache import RedisCache
        from ._redis_files import RedisFileStore

        files_link = link("files", settings.files)
        files = RedisFileStore(files_link, ttl=settings.file_ttl or None)
        cache = RedisCache(files_link)
    return Stores(sessions, files, cache, list(links.values()))


def _link(key: str, url: str, settings: StoreSettings, environ: Mapping[str, str]) -> RedisLink:
    try:
        from ._redis_link import RedisLink
    except ImportError:
        raise ValueError(
            f"stores.{key}: a Redis store needs the redis package: "
            "pip install 'openai-translator[redis]'"
        ) from None
    password = None
    if settings.password_env is not None:
        password = environ.get(settings.password_env)
        if password is None:
            raise ValueError(f"stores.password_env names {settings.password_env}, which is not set")
    return RedisLink(url, prefix=settings.prefix, password=password, timeout=settings.timeout)
