"""What the translator keeps between requests: session history and uploaded files.

Sessions: :class:`MemorySessionStore`, :class:`SQLiteSessionStore` (local,
durable) and, with the ``redis`` extra, :class:`RedisSessionStore`.
Files: :class:`MemoryFileStore`, :class:`DiskFileStore` and
:class:`RedisFileStore`. Every Redis store holds a :class:`RedisLink`; a
:class:`RedisCache` is the backends' shared cache in Redis.
:func:`open_stores` builds the stores a ``[stores]`` table
(:class:`StoreSettings`) names. The Redis names (and the ``redis`` package)
are imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports
from ._files import (
    DiskFileStore,
    FileObject,
    FileStore,
    FileStoreFullError,
    MemoryFileStore,
    is_file_id,
    new_file_id,
)
from ._history import StreamRecorder, Turn, answer_message, merge_history
from ._quota import FileQuotaError, QuotaFileStore
from ._sessions import MemorySessionStore, SessionStore, split_instructions
from ._settings import Stores, StoreSettings, open_stores
from ._sqlite_sessions import SQLiteSessionStore

if TYPE_CHECKING:
    from ._redis_cache import RedisCache
    from ._redis_files import RedisFileStore
    from ._redis_link import RedisLink
    from ._redis_sessions import RedisSessionStore

__all__ = [
    "DiskFileStore",
    "FileObject",
    "FileQuotaError",
    "FileStore",
    "FileStoreFullError",
    "MemoryFileStore",
    "MemorySessionStore",
    "QuotaFileStore",
    "RedisCache",
    "RedisFileStore",
    "RedisLink",
    "RedisSessionStore",
    "SQLiteSessionStore",
    "SessionStore",
    "StoreSettings",
    "Stores",
    "StreamRecorder",
    "Turn",
    "answer_message",
    "is_file_id",
    "merge_history",
    "new_file_id",
    "open_stores",
    "split_instructions",
]

# The Redis stores import the ``redis`` package (an extra): they load on first use.
_LAZY = {
    "RedisCache": "._redis_cache",
    "RedisFileStore": "._redis_files",
    "RedisLink": "._redis_link",
    "RedisSessionStore": "._redis_sessions",
}

__getattr__ = _lazy_exports(__name__, _LAZY)
