"""Uploaded files in Redis, shared by every process and replica.

Under the link's prefix: ``f:<id>`` is a hash with the file's metadata, its
content, its owner and size; ``fi`` (every file) and ``fo:<owner>`` (one
owner's) are sorted sets of ids by upload time, for listing newest first;
``fu`` counts the bytes kept (``fb:<owner>`` one owner's), and ``fs`` and
``fw`` map ids to sizes and owners. ``put`` and
``delete`` are Lua scripts, so the room check, the write and the indexes
change together: a file is listed only once it is whole, and once deleted it
is gone for every replica at once.

``ttl`` (seconds, None for none) expires a file that long after its upload;
the bytes of expired files are given back to ``max_bytes`` at the next
``put``, and their ids leave the listings as they are next read.

A file's owner is the ``scope`` it was put in, as for every
:class:`~translator.stores.FileStore`.
"""

from __future__ import annotations

import time
from typing import cast

import msgspec

from ._files import (
    FileObject,
    FileStore,
    _check_room,
    _Record,
    _sees,
    is_file_id,
    new_file_id,
)
from ._quota import too_many_bytes, too_many_files
from ._redis_link import RedisLink

__all__ = ["RedisFileStore"]

_encoder = msgspec.json.Encoder()
_record = msgspec.json.Decoder(_Record)

# KEYS: file, every-file index, owner index, used counter, sizes, owners, owner's bytes.
# ARGV: id, metadata, content, owner, size, upload ns, max bytes (-1: none),
# ttl ms (0: none), then the prefixes of file keys, owner indexes and owner
# byte counters (for sweeping expired files), then the owner's quota in bytes
# and in files (-1: none).
_PUT = """
local id, owner, size, ttl = ARGV[1], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[8])
if ttl > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if redis.call('EXISTS', ARGV[9] .. old) == 0 then
      local gone = tonumber(redis.call('HGET', KEYS[5], old) or '0')
      local whose = redis.call('HGET', KEYS[6], old) or ''
      redis.call('ZREM', KEYS[2], old)
      redis.call('ZREM', ARGV[10] .. whose, old)
      redis.call('DECRBY', KEYS[4], gone)
      redis.call('DECRBY', ARGV[11] .. whose, gone)
      redis.call('HDEL', KEYS[5], old)
      redis.call('HDEL', KEYS[6], old)
    end
  end
end
if owner ~= '' then
  local max_files, max_owned = tonumber(ARGV[13]), tonumber(ARGV[12])
  local count = redis.call('ZCARD', KEYS[3])
  if max_files >= 0 and count + 1 > max_files then return {2, count} end
  local owned = tonumber(redis.call('GET', KEYS[7]) or '0')
  if max_owned >= 0 and owned + size > max_owned then return {3, owned} end
end
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
local limit = tonumber(ARGV[7])
if limit >= 0 and used + size > limit then return {0, used} end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'data', ARGV[3], 'owner', owner, 'size', size)
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('ZADD', KEYS[2], ARGV[6], id)
redis.call('ZADD', KEYS[3], ARGV[6], id)
redis.call('HSET', KEYS[5], id, size)
redis.call('HSET', KEYS[6], id, owner)
redis.call('INCRBY', KEYS[4], size)
redis.call('INCRBY', KEYS[7], size)
return {1, used}
"""

# KEYS: file, every-file index, used counter, sizes, owners.
# ARGV: id, the caller's owner ("*": any), the owner index prefix, the owner
# byte counter prefix.
_DELETE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return -1 end
if ARGV[2] ~= '*' and owner ~= ARGV[2] then return -1 end
local size = tonumber(redis.call('HGET', KEYS[1], 'size'))
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[3] .. owner, ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('DECRBY', KEYS[3], size)
redis.call('DECRBY', ARGV[4] .. owner, size)
return size
"""


class RedisFileStore(FileStore):
    """Files in the Redis of ``link``: at most ``max_bytes`` in all (None: no bound),
    each kept ``ttl`` seconds (None: until deleted); with :meth:`enforce_owner_quota`,
    each owner's quota is checked in the same script as the write, so replicas
    uploading for one key at once never take it past its quota."""

    def __init__(
        self,
        link: RedisLink,
        *,
        max_bytes: int | None = 1024 * 1024 * 1024,
        ttl: float | None = None,
    ) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        self.link = link
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._put = link.client.register_script(_PUT)
        self._delete = link.client.register_script(_DELETE)
        self._every = link.key("fi")
        self._used = link.key("fu")
        self._sizes = link.key("fs")
        self._owners = link.key("fw")
        self.owner_max_bytes: int | None = None
        self.owner_max_files: int | None = None

    def _file(self, file_id: str) -> str:
        return self.link.key("f", file_id)

    def _owned(self, owner: str) -> str:
        return self.link.key("fo", owner)

    def _owner_bytes(self, owner: str) -> str:
        return self.link.key("fb", owner)

    def enforce_owner_quota(self, *, max_bytes: int, max_files: int) -> bool:
        self.owner_max_bytes = max_bytes
        self.owner_max_files = max_files
        return True

    async def put(
        self, filename: str, content_type: str, data: bytes, purpose: str, *, scope: str | None
    ) -> FileObject:
        ns = time.time_ns()
        size = len(data)
        obj = FileObject(
            new_file_id(), size, ns // 1_000_000_000, filename, purpose, content_type=content_type
        )
        meta = _encoder.encode(_Record(obj, ns, scope))
        ttl_ms = 0 if self.ttl is None else max(1, int(self.ttl * 1000))
        limit = _or_none(self.max_bytes)
        who = scope or ""
        async with self.link.guard("file"):
            stored, used = await self._put(
                keys=[
                    self._file(obj.id),
                    self._every,
                    self._owned(who),
                    self._used,
                    self._sizes,
                    self._owners,
                    self._owner_bytes(who),
                ],
                args=[
                    obj.id, meta, data, who, size, ns, limit, ttl_ms,
                    self._file(""), self._owned(""), self._owner_bytes(""),
                    _or_none(self.owner_max_bytes), _or_none(self.owner_max_files),
                ],
            )  # fmt: skip
        if stored == 2:
            assert self.owner_max_files is not None
            raise too_many_files(int(used), self.owner_max_files)
        if stored == 3:
            assert self.owner_max_bytes is not None
            raise too_many_bytes(size, int(used), self.owner_max_bytes)
        if not stored:
            _check_room(size, int(used), self.max_bytes)
        return obj

    async def get(self, file_id: str, *, scope: str | None) -> FileObject | None:
        if not is_file_id(file_id):
            return None
        async with self.link.guard("file"):
            meta = cast(bytes | None, await self.link.client.hget(self._file(file_id), "meta"))
        record = _decode(meta)
        return record.file if record is not None and _sees(scope, record.owner) else None

    async def read(self, file_id: str, *, scope: str | None) -> tuple[str, str, bytes] | None:
        if not is_file_id(file_id):
            return None
        async with self.link.guard("file"):
            found = await self.link.client.hmget(self._file(file_id), ["meta", "data"])
        meta, data = cast(list[bytes | None], found)
        record = _decode(meta)
        if record is None or data is None or not _sees(scope, record.owner):
            return None
        return record.file.filename, record.file.content_type, data

    async def list(self, purpose: str | None = None, *, scope: str | None) -> list[FileObject]:
        index = self._every if scope is None else self._owned(scope)
        client = self.link.client
        async with self.link.guard("file"):
            ids = [i.decode() for i in cast(list[bytes], await client.zrevrange(index, 0, -1))]
            if not ids:
                return []
            async with client.pipeline(transaction=False) as pipe:
                for file_id in ids:
                    pipe.hget(self._file(file_id), "meta")
                metas = await pipe.execute()
            gone = [i for i, meta in zip(ids, metas, strict=True) if meta is None]
            if gone:  # expired: out of this listing
                await client.zrem(index, *gone)
        records = [r for r in map(_decode, metas) if r is not None and _sees(scope, r.owner)]
        records.sort(key=lambda r: r.created_ns, reverse=True)
        return [r.file for r in records if purpose is None or r.file.purpose == purpose]

    async def delete(self, file_id: str, *, scope: str | None) -> bool:
        if not is_file_id(file_id):
            return False
        async with self.link.guard("file"):
            size = await self._delete(
                keys=[self._file(file_id), self._every, self._used, self._sizes, self._owners],
                args=[
                    file_id,
                    "*" if scope is None else scope,
                    self._owned(""),
                    self._owner_bytes(""),
                ],
            )
        return int(size) >= 0

    async def ping(self) -> None:
        await self.link.ping("files")

    async def room(self) -> int | None:
        if self.max_bytes is None:
            return None
        async with self.link.guard("file"):
            used = await self.link.client.get(self._used)
        return max(0, self.max_bytes - int(used or 0))


def _or_none(limit: int | None) -> int:
    """A limit as the scripts take it: -1 for none."""
    return -1 if limit is None else limit


def _decode(meta: bytes | None) -> _Record | None:
    return None if meta is None else _record.decode(meta)
