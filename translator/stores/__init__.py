"""What the translator keeps between requests: session history and uploaded files.

Sessions: :class:`MemorySessionStore`, :class:`SQLiteSessionStore` (local,
durable) and, with the ``redis`` extra, ``redis_sessions.RedisSessionStore``.
Files: :class:`MemoryFileStore`, :class:`DiskFileStore` and
``redis_files.RedisFileStore``. The Redis modules are imported only when used.
"""

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
from ._sqlite_sessions import SQLiteSessionStore

__all__ = [
    "DiskFileStore",
    "FileObject",
    "FileQuotaError",
    "FileStore",
    "FileStoreFullError",
    "MemoryFileStore",
    "MemorySessionStore",
    "QuotaFileStore",
    "SQLiteSessionStore",
    "SessionStore",
    "StreamRecorder",
    "Turn",
    "answer_message",
    "is_file_id",
    "merge_history",
    "new_file_id",
    "split_instructions",
]
