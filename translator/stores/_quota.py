"""A per-owner quota over any file store.

With API keys, each key's scope owns the files put in it, and one key's
uploads must not fill the store for every other key: :class:`QuotaFileStore`
wraps any :class:`~.files.FileStore` and refuses (413, ``file_quota_exceeded``)
an upload that would take its scope past ``max_bytes`` of content or
``max_files`` files. An upload with no scope (a server without keys) meets
only the wrapped store's own bound.

A scope's usage is what the wrapped store lists for it, so the quota holds
across restarts for a store that keeps its files; uploads in one scope are
checked and put one at a time.
"""

from __future__ import annotations

import asyncio

from ._files import FileObject, FileStore, FileStoreFullError

__all__ = ["FileQuotaError", "QuotaFileStore", "too_many_bytes", "too_many_files"]


class FileQuotaError(FileStoreFullError):
    """An upload would take its owner past the per-key quota (413)."""

    default_code = "file_quota_exceeded"


def too_many_files(count: int, max_files: int) -> FileQuotaError:
    """The refusal of an upload by an owner who has ``count`` files already."""
    return FileQuotaError(
        f"Your API key has {count} files, the most this server keeps for one "
        f"key (quota: {max_files} files); delete files to make room.",
        param="file",
    )


def too_many_bytes(size: int, used: int, max_bytes: int) -> FileQuotaError:
    """The refusal of ``size`` more bytes by an owner whose files take ``used``."""
    return FileQuotaError(
        f"The file is {size} bytes and your API key's files take {used}; "
        f"this server keeps at most {max_bytes} bytes of files for one key "
        "(quota); delete files to make room.",
        param="file",
    )


class QuotaFileStore(FileStore):
    """``store``, with at most ``max_bytes`` of content and ``max_files`` files per owner."""

    def __init__(self, store: FileStore, *, max_bytes: int, max_files: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._locks: dict[str, asyncio.Lock] = {}

    async def put(
        self, filename: str, content_type: str, data: bytes, purpose: str, *, scope: str | None
    ) -> FileObject:
        if scope is None:
            return await self.store.put(filename, content_type, data, purpose, scope=None)
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            files = await self.store.list(scope=scope)
            used = sum(f.bytes for f in files)
            if len(files) + 1 > self.max_files:
                raise too_many_files(len(files), self.max_files)
            if used + len(data) > self.max_bytes:
                raise too_many_bytes(len(data), used, self.max_bytes)
            return await self.store.put(filename, content_type, data, purpose, scope=scope)

    async def get(self, file_id: str, *, scope: str | None) -> FileObject | None:
        return await self.store.get(file_id, scope=scope)

    async def list(self, purpose: str | None = None, *, scope: str | None) -> list[FileObject]:
        return await self.store.list(purpose, scope=scope)

    async def delete(self, file_id: str, *, scope: str | None) -> bool:
        return await self.store.delete(file_id, scope=scope)

    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        return await self.store.read(file_id, scope=scope)

    async def ping(self) -> None:
        await self.store.ping()

    async def room(self) -> int | None:
        """The wrapped store's room (the quota is checked by :meth:`put`, so that its
        refusal names it)."""
        return await self.store.room()
