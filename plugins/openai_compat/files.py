"""Files uploaded to the translator, sent inline: the upstream does not know our ids."""

from __future__ import annotations

import base64

import msgspec

from translator.plugin_api import (
    ChatRequest,
    FileData,
    FilePart,
    InputFilePart,
    UserMessage,
)

__all__ = ["file_parts", "inline_file"]


_FilePart = FilePart | InputFilePart


def file_parts(request: ChatRequest) -> list[tuple[int, int, _FilePart, str]]:
    """``(message, part, the part, its file id)`` of every part naming a file by id."""
    found: list[tuple[int, int, _FilePart, str]] = []
    i = -1
    for message in request.messages:
        i += 1
        content = message.content
        if type(message) is not UserMessage or type(content) is not list:
            continue
        j = -1
        for part in content:
            j += 1
            if type(part) is FilePart:
                file_id = part.file.file_id
                if isinstance(file_id, str):
                    found.append((i, j, part, file_id))
            elif type(part) is InputFilePart:
                found.append((i, j, part, part.file_id))
    return found


def inline_file(part: _FilePart, filename: str, content_type: str, data: bytes) -> FilePart:
    """``part`` as a ``file`` part carrying ``data`` as a data URI."""
    encoded = base64.b64encode(data).decode("ascii")
    uri = f"data:{content_type or 'application/octet-stream'};base64,{encoded}"
    if isinstance(part, FilePart):
        given = part.file.filename
        file = FileData(file_data=uri, filename=given if isinstance(given, str) else filename)
        return msgspec.structs.replace(part, file=file)
    return FilePart(file=FileData(file_data=uri, filename=filename))
