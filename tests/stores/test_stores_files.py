"""The file stores behind ``/v1/files``: memory, disk and Redis (a real server)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import openai.types
import pytest

from benchmarks.redis_server import RedisServer
from translator._backend import BackendContext
from translator.stores import (
    DiskFileStore,
    FileObject,
    FileQuotaError,
    FileStore,
    FileStoreFullError,
    MemoryFileStore,
    is_file_id,
)
from translator.stores._redis_files import RedisFileStore
from translator.stores._redis_link import RedisLink


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(params=["memory", "disk", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[FileStore]:
    if request.param == "memory":
        yield MemoryFileStore()
    elif request.param == "disk":
        yield DiskFileStore(tmp_path / "files")
    else:
        link = RedisLink(request.getfixturevalue("redis_server").url, prefix=redis_prefix)
        yield RedisFileStore(link)
        await link.aclose()


async def test_put_then_get_read_list_delete(store: FileStore) -> None:
    obj = await store.put(
        "report.pdf", "application/pdf", b"%PDF-1.7 data", "assistants", scope=None
    )
    assert is_file_id(obj.id)
    assert (obj.bytes, obj.filename, obj.purpose) == (13, "report.pdf", "assistants")
    assert (obj.object, obj.status, obj.content_type) == ("file", "processed", "application/pdf")

    assert await store.get(obj.id, scope=None) == obj
    assert await store.read(obj.id, scope=None) == (
        "report.pdf",
        "application/pdf",
        b"%PDF-1.7 data",
    )
    assert await store.list(scope=None) == [obj]

    assert await store.delete(obj.id, scope=None) is True
    assert await store.get(obj.id, scope=None) is None
    assert await store.read(obj.id, scope=None) is None
    assert await store.list(scope=None) == []
    assert await store.delete(obj.id, scope=None) is False


async def test_list_is_newest_first_and_filters_by_purpose(store: FileStore) -> None:
    first = await store.put("a.png", "image/png", b"a", "vision", scope=None)
    second = await store.put("b.txt", "text/plain", b"bb", "assistants", scope=None)
    third = await store.put("c.png", "image/png", b"ccc", "vision", scope=None)

    assert [f.id for f in await store.list(scope=None)] == [third.id, second.id, first.id]
    assert [f.id for f in await store.list("vision", scope=None)] == [third.id, first.id]
    assert await store.list("batch", scope=None) == []


async def test_unknown_ids_are_not_found(store: FileStore) -> None:
    await store.put("a.txt", "text/plain", b"a", "assistants", scope=None)
    for file_id in ("file-000000000000000000000000", "agent-file-123", ""):
        assert await store.get(file_id, scope=None) is None
        assert await store.read(file_id, scope=None) is None
        assert await store.delete(file_id, scope=None) is False


async def test_ids_are_unique(store: FileStore) -> None:
    ids = {
        (await store.put("same.txt", "text/plain", b"x", "assistants", scope=None)).id
        for _ in range(20)
    }
    assert len(ids) == 20


async def test_file_object_is_what_the_openai_sdk_reads(store: FileStore) -> None:
    obj = await store.put("notes.md", "text/markdown", b"# hi", "user_data", scope=None)
    parsed = openai.types.FileObject.model_validate_json(msgspec.json.encode(obj))
    assert (parsed.id, parsed.bytes, parsed.filename) == (obj.id, 4, "notes.md")
    assert (parsed.object, parsed.purpose, parsed.status) == ("file", "user_data", "processed")
    assert parsed.created_at == obj.created_at


async def test_a_store_serves_backends_as_their_file_source(store: FileStore) -> None:
    obj = await store.put("clip.mp4", "video/mp4", b"\x00\x01", "assistants", scope=None)
    context = BackendContext(files=store)
    assert context.files is not None
    assert await context.files.read(obj.id, scope=None) == ("clip.mp4", "video/mp4", b"\x00\x01")


# -- bounds -------------------------------------------------------------------


async def test_memory_store_is_bounded_by_total_bytes() -> None:
    store = MemoryFileStore(max_bytes=10)
    first = await store.put("a", "text/plain", b"123456", "assistants", scope=None)

    with pytest.raises(FileStoreFullError) as caught:
        await store.put("b", "text/plain", b"12345", "assistants", scope=None)
    assert caught.value.status == 413
    assert "full" in caught.value.message
    assert caught.value.to_openai()["error"]["code"] == "file_store_full"
    assert [f.id for f in await store.list(scope=None)] == [first.id]

    await store.delete(first.id, scope=None)
    await store.put("b", "text/plain", b"12345", "assistants", scope=None)


async def test_a_file_larger_than_the_whole_store_is_refused() -> None:
    store = MemoryFileStore(max_bytes=4)
    with pytest.raises(FileStoreFullError, match="at most 4 bytes"):
        await store.put("big", "text/plain", b"12345", "assistants", scope=None)
    assert await store.list(scope=None) == []


async def test_disk_store_bound_counts_files_found_at_start(tmp_path: Path) -> None:
    await DiskFileStore(tmp_path, max_bytes=10).put(
        "a", "text/plain", b"12345678", "assistants", scope=None
    )
    reopened = DiskFileStore(tmp_path, max_bytes=10)
    with pytest.raises(FileStoreFullError):
        await reopened.put("b", "text/plain", b"12345", "assistants", scope=None)
    await reopened.put("c", "text/plain", b"12", "assistants", scope=None)


async def test_disk_store_frees_room_on_delete(tmp_path: Path) -> None:
    store = DiskFileStore(tmp_path, max_bytes=10)
    first = await store.put("a", "text/plain", b"12345678", "assistants", scope=None)
    assert await store.delete(first.id, scope=None)
    await store.put("b", "text/plain", b"1234567890", "assistants", scope=None)


# -- disk specifics -----------------------------------------------------------


async def test_disk_store_survives_a_restart(tmp_path: Path) -> None:
    store = DiskFileStore(tmp_path / "data")
    older = await store.put("a.txt", "text/plain", b"first", "assistants", scope=None)
    newer = await store.put("b.bin", "application/octet-stream", b"\xff" * 3, "batch", scope=None)

    reopened = DiskFileStore(tmp_path / "data")
    assert await reopened.list(scope=None) == [newer, older]
    assert await reopened.get(older.id, scope=None) == older
    assert await reopened.read(newer.id, scope=None) == (
        "b.bin",
        "application/octet-stream",
        b"\xff\xff\xff",
    )


async def test_disk_store_refuses_ids_that_leave_its_directory(tmp_path: Path) -> None:
    directory = tmp_path / "files"
    store = DiskFileStore(directory)
    await store.put("a.txt", "text/plain", b"a", "assistants", scope=None)
    # A file outside the store, shaped like the store's own metadata.
    outside = await DiskFileStore(tmp_path / "other").put(
        "s", "text/plain", b"secret", "x", scope=None
    )
    (tmp_path / "secret.json").write_bytes((tmp_path / "other" / f"{outside.id}.json").read_bytes())
    (tmp_path / "secret.data").write_bytes(b"secret")

    for file_id in (
        "../secret",
        "../other/" + outside.id,
        "file-../../secret",
        f"{outside.id}/../../secret",
        str(tmp_path / "secret"),
        outside.id.upper(),
    ):
        assert await store.get(file_id, scope=None) is None, file_id
        assert await store.read(file_id, scope=None) is None, file_id
        assert await store.delete(file_id, scope=None) is False, file_id
    assert (tmp_path / "secret.json").exists()
    assert (tmp_path / "other" / f"{outside.id}.json").exists()


async def test_disk_store_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = DiskFileStore(tmp_path)
    obj = await store.put("a.txt", "text/plain", b"abc", "assistants", scope=None)
    assert names(tmp_path) == [f"{obj.id}.data", f"{obj.id}.json"]
    await store.delete(obj.id, scope=None)
    assert names(tmp_path) == []


async def test_disk_store_ignores_half_written_and_unreadable_files(tmp_path: Path) -> None:
    store = DiskFileStore(tmp_path)
    obj = await store.put("a.txt", "text/plain", b"abc", "assistants", scope=None)
    # What a crash mid-write leaves: a temporary file, content with no metadata.
    (tmp_path / ".tmp-abc.json").write_bytes(b'{"file": {"id": ')
    (tmp_path / "file-0123456789abcdef01234567.data").write_bytes(b"orphan")
    (tmp_path / "file-111111111111111111111111.json").write_bytes(b"not json")

    assert await store.list(scope=None) == [obj]
    assert await store.get("file-0123456789abcdef01234567", scope=None) is None
    assert await store.get("file-111111111111111111111111", scope=None) is None


@pytest.mark.parametrize("failing_write", [1, 2], ids=["content", "metadata"])
async def test_disk_store_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_write: int
) -> None:
    store = DiskFileStore(tmp_path, max_bytes=10)
    real_replace = os.replace
    writes = 0

    def broken_replace(src: str, dst: str) -> None:
        nonlocal writes
        writes += 1
        if writes == failing_write:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("translator.stores._files.os.replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        await store.put("a.txt", "text/plain", b"12345678", "assistants", scope=None)
    monkeypatch.undo()

    assert names(tmp_path) == []
    assert await store.list(scope=None) == []
    await store.put(
        "b.txt", "text/plain", b"1234567890", "assistants", scope=None
    )  # room given back


async def test_disk_store_concurrent_puts_respect_the_bound(tmp_path: Path) -> None:
    store = DiskFileStore(tmp_path, max_bytes=10)
    results = await asyncio.gather(
        *(store.put(f"{i}.txt", "text/plain", b"1234", "assistants", scope=None) for i in range(5)),
        return_exceptions=True,
    )
    stored = [r for r in results if isinstance(r, FileObject)]
    refused = [r for r in results if isinstance(r, FileStoreFullError)]
    assert (len(stored), len(refused)) == (2, 3)
    assert sorted(f.id for f in await DiskFileStore(tmp_path).list(scope=None)) == sorted(
        f.id for f in stored
    )


async def test_disk_store_directory_is_created_on_first_write(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "yet"
    store = DiskFileStore(directory)
    assert await store.list(scope=None) == []
    assert not directory.exists()
    await store.put("a", "text/plain", b"a", "assistants", scope=None)
    assert directory.is_dir()


async def test_a_scope_sees_only_its_own_files_and_no_scope_sees_all(store: FileStore) -> None:
    mine = await store.put("a.txt", "text/plain", b"a", "assistants", scope="key-a")
    theirs = await store.put("b.txt", "text/plain", b"b", "assistants", scope="key-b")
    assert await store.list(scope="key-a") == [mine]
    assert await store.get(theirs.id, scope="key-a") is None
    assert await store.read(theirs.id, scope="key-a") is None
    assert await store.delete(theirs.id, scope="key-a") is False
    assert await store.read(mine.id, scope="key-a") == ("a.txt", "text/plain", b"a")
    assert {f.id for f in await store.list(scope=None)} == {mine.id, theirs.id}  # single-tenant
    assert await store.read(theirs.id, scope=None) == ("b.txt", "text/plain", b"b")
    assert await store.delete(theirs.id, scope="key-b") is True
    assert await store.list(scope=None) == [mine]


async def test_a_file_put_without_a_scope_is_no_scopes(store: FileStore) -> None:
    shared = await store.put("a.txt", "text/plain", b"a", "assistants", scope=None)
    assert await store.get(shared.id, scope="key-a") is None
    assert await store.list(scope="key-a") == []
    assert await store.get(shared.id, scope=None) == shared


async def test_disk_files_without_an_owner_are_seen_only_without_a_scope(
    tmp_path: Path,
) -> None:
    store = DiskFileStore(tmp_path)
    obj = await store.put("a.txt", "text/plain", b"a", "assistants", scope="key-a")
    meta = tmp_path / f"{obj.id}.json"
    assert b"key-a" in meta.read_bytes()
    assert "owner" not in msgspec.json.decode(msgspec.json.encode(obj))
    written = msgspec.json.decode(meta.read_bytes())
    del written["owner"]  # as written before files had owners
    meta.write_bytes(msgspec.json.encode(written))
    assert await store.get(obj.id, scope=None) == obj
    assert await store.get(obj.id, scope="key-a") is None


async def test_room_is_what_is_left_under_the_bound(tmp_path: Path) -> None:
    for store in (MemoryFileStore(max_bytes=10), DiskFileStore(tmp_path, max_bytes=10)):
        assert await store.room() == 10
        await store.put("a", "text/plain", b"abcd", "assistants", scope=None)
        assert await store.room() == 6
    assert await MemoryFileStore(max_bytes=None).room() is None


async def test_a_redis_owner_quota_holds_across_replicas_uploading_at_once(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Two stores on one Redis (two replicas): the quota is checked with the write."""
    links = [RedisLink(redis_server.url, prefix=redis_prefix) for _ in range(2)]
    stores = [RedisFileStore(link) for link in links]
    for store in stores:
        assert store.enforce_owner_quota(max_bytes=1000, max_files=3)
    try:
        results = await asyncio.gather(
            *(
                s.put(f"{n}.txt", "text/plain", b"x", "user_data", scope="key-a")
                for n in range(4)
                for s in stores
            ),
            return_exceptions=True,
        )
        kept = [r for r in results if isinstance(r, FileObject)]
        refused = [r for r in results if isinstance(r, FileQuotaError)]
        assert (len(kept), len(refused)) == (3, 5)
        assert "quota: 3 files" in refused[0].message
        # A delete anywhere frees the quota everywhere.
        assert await stores[1].delete(kept[0].id, scope="key-a")
        await stores[0].put("again.txt", "text/plain", b"x", "user_data", scope="key-a")
        # Another key's room is its own.
        big = b"y" * 1000
        await stores[0].put("big.bin", "application/octet-stream", big, "user_data", scope="key-b")
        with pytest.raises(FileQuotaError) as caught:
            await stores[1].put(
                "more.bin", "application/octet-stream", b"y", "user_data", scope="key-b"
            )
        assert caught.value.status == 413
        assert "take 1000" in caught.value.message
    finally:
        for link in links:
            await link.aclose()
