"""Uploaded files: the OpenAI file object, and where the bytes are kept.

:class:`FileStore` is what the server's ``/v1/files`` routes and the backends
use; its ``read`` satisfies :class:`translator.backend.FileSource`. Two stores
ship: :class:`MemoryFileStore` (bounded by total bytes) and
:class:`DiskFileStore` (one directory, survives a restart).

Ids are ``file-`` and 24 hex digits. An id of any other shape is simply not
found (``None`` / ``False``): it never reaches the file system, and ids that
belong to someone else (an agent server's own file ids) can be told apart.
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
    """Where uploaded files live. Unknown or malformed ids are not found, never an error."""

    @abc.abstractmethod
    async def put(self, filename: str, content_type: str, data: bytes, purpose: str) -> FileObject:
        """Keep ``data``; raises :class:`FileStoreFullError` when there is no room."""

    @abc.abstractmethod
    async def get(self, file_id: str) -> FileObject | None:
        """The file object, or None."""

    @abc.abstractmethod
    async def list(self, purpose: str | None = None) -> list[FileObject]:
        """Every file (of ``purpose``, when given), newest first."""

    @abc.abstractmethod
    async def delete(self, file_id: str) -> bool:
        """Forget a file; False when there was none."""

    @abc.abstractmethod
    async def read(self, file_id: str) -> tuple[str, str, bytes] | None:
        """``(filename, content_type, data)``, or None."""


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
        self._files: dict[str, tuple[FileObject, bytes]] = {}

    async def put(self, filename: str, content_type: str, data: bytes, purpose: str) -> FileObject:
        _check_room(len(data), self.used, self.max_bytes)
        obj = FileObject(
            new_file_id(), len(data), int(time.time()), filename, purpose, content_type=content_type
        )
        self._files[obj.id] = (obj, data)
        self.used += len(data)
        return obj

    async def get(self, file_id: str) -> FileObject | None:
        found = self._files.get(file_id)
        return None if found is None else found[0]

    async def list(self, purpose: str | None = None) -> list[FileObject]:
        return [
            obj
            for obj, _ in reversed(self._files.values())
            if purpose is None or obj.purpose == purpose
        ]

    async def delete(self, file_id: str) -> bool:
        found = self._files.pop(file_id, None)
        if found is None:
            return False
        self.used -= found[0].bytes
        return True

    async def read(self, file_id: str) -> tuple[str, str, bytes] | None:
        found = self._files.get(file_id)
        if found is None:
            return None
        obj, data = found
        return obj.filename, obj.content_type, data


class _Record(msgspec.Struct):
    """A metadata file: the file object, and the upload time to the nanosecond (for order)."""

    file: FileObject
    created_ns: int


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(_Record)


class DiskFileStore(FileStore):
    """Files in ``directory``: ``<id>.data`` holds the content, ``<id>.json`` the metadata.

    Each file is written to a temporary name and renamed into place, content
    before metadata, so a file is listed only once it is whole; deleting
    removes the metadata first. File I/O runs in a worker thread, off the event
    loop. ``max_bytes`` (default 1 GiB, None for no bound) bounds the content
    this store keeps, counting what it finds in the directory when first used.
    """

    def __init__(self, directory: Path, *, max_bytes: int | None = 1024 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._used: int | None = None
        self._lock = asyncio.Lock()

    # -- paths --------------------------------------------------------------

    def _paths(self, file_id: str) -> tuple[Path, Path] | None:
        if not is_file_id(file_id):
            return None
        return self.directory / f"{file_id}.data", self.directory / f"{file_id}.json"

    # -- the interface --------------------------------------------------------

    async def put(self, filename: str, content_type: str, data: bytes, purpose: str) -> FileObject:
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
            meta = _record_encoder.encode(_Record(obj, ns))
            await asyncio.to_thread(self._write, paths, data, meta)
        except BaseException:
            if self._used is not None:
                self._used -= size
            raise
        return obj

    async def get(self, file_id: str) -> FileObject | None:
        paths = self._paths(file_id)
        if paths is None:
            return None
        record = await asyncio.to_thread(_load_record, paths[1])
        return None if record is None else record.file

    async def list(self, purpose: str | None = None) -> list[FileObject]:
        records = await asyncio.to_thread(_scan, self.directory)
        records.sort(key=lambda r: r.created_ns, reverse=True)
        return [r.file for r in records if purpose is None or r.file.purpose == purpose]

    async def delete(self, file_id: str) -> bool:
        paths = self._paths(file_id)
        if paths is None:
            return False
        size = await asyncio.to_thread(_remove, paths)
        if size is None:
            return False
        if self._used is not None:
            self._used = max(0, self._used - size)
        return True

    async def read(self, file_id: str) -> tuple[str, str, bytes] | None:
        paths = self._paths(file_id)
        if paths is None:
            return None
        found = await asyncio.to_thread(_load_both, paths)
        if found is None:
            return None
        record, data = found
        return record.file.filename, record.file.content_type, data

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


def _load_both(paths: tuple[Path, Path]) -> tuple[_Record, bytes] | None:
    record = _load_record(paths[1])
    if record is None:
        return None
    try:
        return record, paths[0].read_bytes()
    except FileNotFoundError:  # deleted between the two reads
        return None


def _remove(paths: tuple[Path, Path]) -> int | None:
    """Remove a file, metadata first; its size, or None when it was not there."""
    record = _load_record(paths[1])
    try:
        paths[1].unlink()
    except FileNotFoundError:
        return None
    paths[0].unlink(missing_ok=True)
    return record.file.bytes if record is not None else 0
