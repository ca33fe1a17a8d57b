"""What the translator keeps between requests: session history and uploaded files."""

from .files import (
    DiskFileStore,
    FileObject,
    FileStore,
    FileStoreFullError,
    MemoryFileStore,
    file_owner,
    is_file_id,
    new_file_id,
)
from .history import StreamRecorder, Turn, answer_message, merge_history
from .sessions import MemorySessionStore, SessionStore, split_instructions

__all__ = [
    "DiskFileStore",
    "FileObject",
    "FileStore",
    "FileStoreFullError",
    "MemoryFileStore",
    "MemorySessionStore",
    "SessionStore",
    "StreamRecorder",
    "Turn",
    "answer_message",
    "file_owner",
    "is_file_id",
    "merge_history",
    "new_file_id",
    "split_instructions",
]
