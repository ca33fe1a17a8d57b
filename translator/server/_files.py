"""``/v1/files``: what the OpenAI SDK's ``files.create``, ``list``, ``retrieve``,
``delete`` and ``content`` do, over a :class:`~translator.stores.FileStore`.

Each handler passes the store the caller's scope (from its API key, found
by the edge middleware): with keys, a caller sees only its own uploads."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import msgspec
from aiohttp import BodyPartReader, web

from .._telemetry import store_call
from ..errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from ..stores import FileObject, FileStore, FileStoreFullError
from ._body import BROKEN_BODY, abandon_body, check_content_type, check_encoding
from ._middleware import EXCHANGE

__all__ = ["PURPOSES", "FileHandlers"]

_encoder = msgspec.json.Encoder()
_MAX_LIST = 10_000
_MAX_FIELD = 1024
_OVERHEAD = 64 * 1024
"""What a multipart body may carry beside the file: boundaries, part headers, fields."""
_BAD_UPLOAD: tuple[type[BaseException], ...] = (*BROKEN_BODY, ValueError)
"""What aiohttp's multipart reader raises for a body it cannot parse."""
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
"""The purposes OpenAI's ``files.create`` takes."""


class FileList(msgspec.Struct):
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"


class FileDeleted(msgspec.Struct):
    id: str
    deleted: bool
    object: Literal["file"] = "file"


def _json(obj: msgspec.Struct) -> web.Response:
    return web.Response(body=_encoder.encode(obj), content_type="application/json")


def _not_found(file_id: str) -> NotFoundError:
    return NotFoundError(f"No such File object: {file_id}", param="id")


def _scope(request: web.Request) -> str | None:
    """The caller's scope: whose files the request may see."""
    return request[EXCHANGE].scope


class FileHandlers:
    """The file routes over one store."""

    def __init__(self, store: FileStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def create(self, request: web.Request) -> web.Response:
        """Multipart upload: a ``file`` part and a ``purpose`` field."""
        check_content_type(
            request,
            "multipart/form-data",
            "Upload files as multipart/form-data with 'file' and 'purpose' fields",
        )
        check_encoding(request)
        length = request.content_length
        if length is not None and length > self.max_bytes + _OVERHEAD:
            raise PayloadTooLargeError(
                f"The upload is {length} bytes; this server accepts files of at most "
                f"{self.max_bytes} bytes.",
                param="file",
            )
        room = await self.store.room()
        if room is not None and length is not None and length > room + _OVERHEAD:
            raise FileStoreFullError(
                f"The upload is {length} bytes; the file store has room for {room} more; "
                "delete files to make room.",
                param="file",
            )
        try:
            upload, purpose = await self._parts(request, room)
        except _BAD_UPLOAD:
            abandon_body(request)
            raise InvalidRequestError(
                "The upload is not a well-formed multipart/form-data body (a boundary in "
                "Content-Type, then parts each with valid headers, within the size allowed).",
                code="invalid_multipart",
            ) from None
        if upload is None:
            raise InvalidRequestError("Missing required parameter: 'file'.", param="file")
        if purpose is None:
            raise InvalidRequestError("Missing required parameter: 'purpose'.", param="purpose")
        filename, content_type, data = upload
        with store_call("files", "put"):
            stored = await self.store.put(
                filename, content_type, data, purpose, scope=_scope(request)
            )
        return _json(stored)

    async def _parts(
        self, request: web.Request, room: int | None
    ) -> tuple[tuple[str, str, bytes] | None, str | None]:
        """The ``file`` part and the ``purpose`` field; reading stops past the limits."""
        upload: tuple[str, str, bytes] | None = None
        purpose: str | None = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart is no field the API defines
            if part.name == "file":
                data = await _read(part, self.max_bytes, "file", room)
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                upload = (part.filename or "upload", content_type, data)
            elif part.name == "purpose":
                purpose = (await _read(part, _MAX_FIELD, "purpose")).decode(errors="replace")
                _check_purpose(purpose)  # before reading a file that would be refused
            else:
                await part.release()
        return upload, purpose

    async def list(self, request: web.Request) -> web.Response:
        """Newest first (``order=asc`` for oldest first), ``after`` an id, ``limit`` at most."""
        query = request.query
        with store_call("files", "list"):
            files = await self.store.list(query.get("purpose") or None, scope=_scope(request))
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError(
                f"'order' must be 'asc' or 'desc' (got '{order}').", param="order"
            )
        if order == "asc":
            files.reverse()
        after = query.get("after")
        if after:
            ids = [f.id for f in files]
            files = files[ids.index(after) + 1 :] if after in ids else []
        limit = _limit(query.get("limit"))
        page = files[:limit]
        return _json(
            FileList(
                page,
                len(files) > limit,
                page[0].id if page else None,
                page[-1].id if page else None,
            )
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        with store_call("files", "get"):
            found = await self.store.get(file_id, scope=_scope(request))
        if found is None:
            raise _not_found(file_id)
        return _json(found)

    async def delete(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        with store_call("files", "delete"):
            deleted = await self.store.delete(file_id, scope=_scope(request))
        if not deleted:
            raise _not_found(file_id)
        return _json(FileDeleted(file_id, True))

    async def content(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        with store_call("files", "read"):
            found = await self.store.read(file_id, scope=_scope(request))
        if found is None:
            raise _not_found(file_id)
        filename, content_type, data = found
        headers = {
            "Content-Type": content_type,
            "Content-Disposition": _disposition(filename),
            "X-Content-Type-Options": "nosniff",  # served as the type it was uploaded with
        }
        return web.Response(body=data, headers=headers)


async def _read(part: BodyPartReader, limit: int, name: str, room: int | None = None) -> bytes:
    """A part's content, refused as soon as it is over ``limit`` (or the store's ``room``)."""
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"'{name}' is over {limit} bytes, the most this server accepts.", param=name
            )
        if room is not None and len(data) > room:
            raise FileStoreFullError(
                f"The file store has room for {room} more bytes; delete files to make room.",
                param=name,
            )
    return bytes(data)


def _check_purpose(purpose: str) -> None:
    if not purpose:
        raise InvalidRequestError("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in PURPOSES:
        raise InvalidRequestError(
            f"Invalid value for 'purpose': '{purpose[:64]}'; "
            f"expected one of {', '.join(PURPOSES)}.",
            param="purpose",
            code="invalid_value",
        )


def _disposition(filename: str) -> str:
    """``attachment`` with the name: plain ASCII as is, anything else percent-encoded."""
    plain = filename.isascii() and filename.isprintable()
    if plain and '"' not in filename and "\\" not in filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


def _limit(value: str | None) -> int:
    if value is None:
        return _MAX_LIST
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIST:
        raise InvalidRequestError(
            f"'limit' must be a whole number from 1 to {_MAX_LIST} (got '{value}').",
            param="limit",
            code="invalid_value",
        )
    return limit
