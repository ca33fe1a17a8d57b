"""Uploaded files: the OpenAI file object, and where the bytes are kept.

:class:`FileStore` is what the server's ``/v1/files`` routes and the backends
use; its ``read`` satisfies :class:`translator._backend.FileSource`. Here are
:class:`MemoryFileStore` (bounded by total bytes) and :class:`DiskFileStore`
(one directory, survives a restart; the processes of one machine may share
it); :class:`~.redis_files.RedisFileStore` is shared by every replica.

Ids are ``file-`` and 24 hex digits. An id of any other shape is simply not
found (``None`` / ``False``): it never reaches the file system, and ids that
belong to someone else (an agent server's own file ids) can be told apart.

Files belong to a scope: every method takes the caller's ``scope``
explicitly. ``put`` records it with the file, and the other methods see
only that scope's files; with ``scope=None`` every file is seen (and a file
put so belongs to no one). The server passes the scope of the caller's API
key, so that with keys each caller sees its own uploads, in ``/v1/files``
and in the files its chat requests name (the pipeline hands backends the
same scope on the request: :func:`translator._backend.caller_scope`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import PayloadTooLargeError

__all__ = [
    "DiskFileStore",
    "FileObject",
    "FileStore",
    "FileStoreFullError",
    "MemoryFileStore",
    "is_file_id",
    "new_file_id",
]

log = logging.getLogger("translator.stores")

_ID = re.compile(r"file-[0-9a-f]{24}")


def _sees(scope: str | None, owner: str | None) -> bool:
    """Whether a caller in ``scope`` may see a file kept for ``owner``."""
    return scope is None or scope == owner


class FileObject(msgspec.Struct):
    """The OpenAI file object; ``content_type`` is an extra the SDK tolerates."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: Literal["file"] = "file"
    status: str = "processed"
    content_type: str = "application/octet-stream"


class FileStoreFullError(PayloadTooLargeError):
    """The store has no room for a file (413)."""

    default_code = "file_store_full"


def new_file_id() -> str:
    """A fresh file id: ``file-`` and 24 hex digits."""
    return "file-" + secrets.token_hex(12)


def is_file_id(file_id: str) -> bool:
    """Whether ``file_id`` has the shape of an id this project hands out."""
    return _ID.fullmatch(file_id) is not None


class FileStore(abc.ABC):
    """Where uploaded files live, each in the ``scope`` it was put in. Unknown or
    malformed ids, and other scopes' files, are not found, never an error."""

    @abc.abstractmethod
    async def put(
        self, filename: str, content_type: str, data: bytes, purpose: str, *, scope: str | None
    ) -> FileObject:
        """Keep ``data`` for ``scope``; raises :class:`FileStoreFullError` when there is no room."""

    @abc.abstractmethod
    async def get(self, file_id: str, *, scope: str | None) -> FileObject | None:
        """The file object, or None."""

    @abc.abstractmethod
    async def list(self, purpose: str | None = None, *, scope: str | None) -> list[FileObject]:
        """Every file ``scope`` sees (of ``purpose``, when given), newest first."""

    @abc.abstractmethod
    async def delete(self, file_id: str, *, scope: str | None) -> bool:
        """Forget a file; False when ``scope`` has none of that id."""

    @abc.abstractmethod
    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        """``(filename, content_type, data)``, or None."""

    async def room(self) -> int | None:
        """Bytes of content the store can still take, None when unbounded (a hint:
        ``put`` decides)."""
        return None

    def enforce_owner_quota(self, *, max_bytes: int, max_files: int) -> bool:
        """Hold each owner to ``max_bytes`` of content and ``max_files`` files in the
        store itself, when it can do so for every process sharing it; False when it
        cannot (then wrap it in a :class:`~.quota.QuotaFileStore`)."""
        return False

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`OSError` when the store cannot be reached (``/ready`` asks)."""


def _check_room(size: int, used: int, limit: int | None) -> None:
    if limit is None or used + size <= limit:
        return
    if size > limit:
        raise FileStoreFullError(
            f"The file is {size} bytes; this server keeps at most {limit} bytes of files.",
            param="file",
        )
    raise FileStoreFullError(
        f"The file store is full ({used} of {limit} bytes used, the file is {size} bytes); "
        "delete files to make room.",
        param="file",
    )


class MemoryFileStore(FileStore):
    """Files in memory, at most ``max_bytes`` of content in all (default 256 MiB)."""

    def __init__(self, *, max_bytes: int | None = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        # Insertion order is upload order: reversed, it is newest first.
        self._files: dict[str, tuple[FileObject, bytes, str | None]] = {}

    async def put(
        self, filename: str, content_type: str, data: bytes, purpose: str, *, scope: str | None
    ) -> FileObject:
        _check_room(len(data), self.used, self.max_bytes)
        obj = FileObject(
            new_file_id(), len(data), int(time.time()), filename, purpose, content_type=content_type
        )
        self._files[obj.id] = (obj, data, scope)
        self.used += len(data)
        return obj

    def _find(self, file_id: str, scope: str | None) -> tuple[FileObject, bytes, str | None] | None:
        found = self._files.get(file_id)
        return found if found is not None and _sees(scope, found[2]) else None

    async def get(self, file_id: str, *, scope: str | None) -> FileObject | None:
        found = self._find(file_id, scope)
        return None if found is None else found[0]

    async def list(self, purpose: str | None = None, *, scope: str | None) -> list[FileObject]:
        return [
            obj
            for obj, _, owner in reversed(self._files.values())
            if (purpose is None or obj.purpose == purpose) and _sees(scope, owner)
        ]

    async def delete(self, file_id: str, *, scope: str | None) -> bool:
        found = self._find(file_id, scope)
        if found is None:
            return False
        del self._files[file_id]
        self.used -= found[0].bytes
        return True

    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        found = self._find(file_id, scope)
        if found is None:
            return None
        obj, data, _ = found
        return obj.filename, obj.content_type, data

    async def room(self) -> int | None:
        return None if self.max_bytes is None else max(0, self.max_bytes - self.used)


class _Record(msgspec.Struct, omit_defaults=True):
    """A metadata file: the file object, the upload time to the nanosecond (for
    order), and the scope it was put for, its owner (never shown to clients)."""

    file: FileObject
    created_ns: int
    owner: str | None = None


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(_Record)


class DiskFileStore(FileStore):
    """Files in ``directory``: ``<id>.data`` holds the content, ``<id>.json`` the metadata.

    Each file is written to a temporary name and renamed into place, content
    before metadata, so a file is listed only once it is whole; deleting
    removes the metadata first. File I/O runs in a worker thread, off the event
    loop. ``max_bytes`` (default 1 GiB, None for no bound) bounds the content
    this store keeps, counting what it finds in the directory when first used;
    processes sharing the directory (``--workers``) each count from there what
    they add and remove themselves, so together they may pass it.
    """

    def __init__(self, directory: Path, *, max_bytes: int | None = 1024 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._used: int | None = None
        self._lock = asyncio.Lock()

    async def ping(self) -> None:
        """The directory must be there (it is made if need be) and writable."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not os.access(self.directory, os.W_OK | os.X_OK) or not self.directory.is_dir():
            raise OSError(f"{self.directory} is not a writable directory")

    # -- paths --------------------------------------------------------------

    def _paths(self, file_id: str) -> tuple[Path, Path] | None:
        if not is_file_id(file_id):
            return None
        return self.directory / f"{file_id}.data", self.directory / f"{file_id}.json"

    # -- the interface --------------------------------------------------------

    async def put(
        self, filename: str, content_type: str, data: bytes, purpose: str, *, scope: str | None
    ) -> FileObject:
        size = len(data)
        async with self._lock:
            used = await self._usage()
            _check_room(size, used, self.max_bytes)
            self._used = used + size  # reserved now; given back if writing fails
        ns = time.time_ns()
        obj = FileObject(
            new_file_id(), size, ns // 1_000_000_000, filename, purpose, content_type=content_type
        )
        paths = self._paths(obj.id)
        assert paths is not None
        try:
            meta = _record_encoder.encode(_Record(obj, ns, scope))
            await asyncio.to_thread(self._write, paths, data, meta)
        except BaseException:
            if self._used is not None:
                self._used -= size
            raise
        return obj

    async def get(self, file_id: str, *, scope: str | None) -> FileObject | None:
        paths = self._paths(file_id)
        if paths is None:
            return None
        record = await asyncio.to_thread(_load_record, paths[1])
        return None if record is None or not _sees(scope, record.owner) else record.file

    async def list(self, purpose: str | None = None, *, scope: str | None) -> list[FileObject]:
        records = await asyncio.to_thread(_scan, self.directory)
        records.sort(key=lambda r: r.created_ns, reverse=True)
        return [
            r.file
            for r in records
            if (purpose is None or r.file.purpose == purpose) and _sees(scope, r.owner)
        ]

    async def delete(self, file_id: str, *, scope: str | None) -> bool:
        paths = self._paths(file_id)
        if paths is None:
            return False
        size = await asyncio.to_thread(_remove, paths, scope)
        if size is None:
            return False
        if self._used is not None:
            self._used = max(0, self._used - size)
        return True

    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        paths = self._paths(file_id)
        if paths is None:
            return None
        found = await asyncio.to_thread(_load_both, paths, scope)
        if found is None:
            return None
        record, data = found
        return record.file.filename, record.file.content_type, data

    async def room(self) -> int | None:
        if self.max_bytes is None:
            return None
        return max(0, self.max_bytes - await self._usage())

    # -- blocking helpers (run in a worker thread) ------------------------------

    async def _usage(self) -> int:
        used = self._used
        if used is None:
            records = await asyncio.to_thread(_scan, self.directory)
            used = self._used = sum(r.file.bytes for r in records)
        return used

    def _write(self, paths: tuple[Path, Path], data: bytes, meta: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(paths[0], data)
        try:
            _atomic_write(paths[1], meta)
        except BaseException:
            paths[0].unlink(missing_ok=True)
            raise


def _scan(directory: Path) -> list[_Record]:
    """Every file's metadata in ``directory``."""
    if not directory.is_dir():
        return []
    paths = (p for p in directory.glob("file-*.json") if is_file_id(p.stem))
    return [r for r in map(_load_record, paths) if r is not None]


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_record(path: Path) -> _Record | None:
    try:
        return _record_decoder.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as exc:
        log.warning("file store: skipping unreadable metadata %s: %s", path, exc)
        return None


def _load_both(paths: tuple[Path, Path], scope: str | None) -> tuple[_Record, bytes] | None:
    record = _load_record(paths[1])
    if record is None or not _sees(scope, record.owner):
        return None
    try:
        return record, paths[0].read_bytes()
    except FileNotFoundError:  # deleted between the two reads
        return None


def _remove(paths: tuple[Path, Path], scope: str | None) -> int | None:
    """Remove ``scope``'s file (any, for None), metadata first; its size, or None
    when it was not there (or is another's)."""
    record = _load_record(paths[1])
    if scope is not None and (record is None or record.owner != scope):
        return None
    try:
        paths[1].unlink()
    except FileNotFoundError:
        return None
    paths[0].unlink(missing_ok=True)
    return record.file.bytes if record is not None else 0
