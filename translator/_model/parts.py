"""Content parts: the pieces of a message's content, a union tagged by ``type``.

Media keep their source exactly as the client gave it (a URL or a data URI);
nothing here decodes base64.
"""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, UnsetType

from .strict import Strict

__all__ = [
    "AssistantPart",
    "AudioURL",
    "AudioURLPart",
    "CacheBreakpoint",
    "FileData",
    "FilePart",
    "FileURL",
    "FileURLPart",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InputAudioPart",
    "InputFilePart",
    "Part",
    "RefusalPart",
    "TextPart",
    "UserPart",
    "VideoURL",
    "VideoURLPart",
]


class CacheBreakpoint(Strict):
    """An explicit prompt-cache breakpoint on a content part."""

    mode: Literal["explicit"]
    ttl: Literal["30m", "12h"] | UnsetType = UNSET


class Part(Strict, tag_field="type"):
    """Base of every content part."""


class TextPart(Part, tag="text"):
    text: str
    prompt_cache_breakpoint: CacheBreakpoint | UnsetType = UNSET


class ImageURL(Strict):
    url: str
    detail: Literal["auto", "low", "high", "original"] | UnsetType = UNSET


class ImagePart(Part, tag="image_url"):
    image_url: ImageURL
    prompt_cache_breakpoint: CacheBreakpoint | UnsetType = UNSET


class InputAudio(Strict):
    data: str
    format: Literal["wav", "mp3"]


class InputAudioPart(Part, tag="input_audio"):
    input_audio: InputAudio
    prompt_cache_breakpoint: CacheBreakpoint | UnsetType = UNSET


class FileData(Strict):
    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(Part, tag="file"):
    file: FileData
    prompt_cache_breakpoint: CacheBreakpoint | UnsetType = UNSET


class RefusalPart(Part, tag="refusal"):
    refusal: str


class InputFilePart(Part, tag="input_file"):
    """A file uploaded beforehand, named by id (VLM agents extension)."""

    file_id: str


class VideoURL(Strict):
    url: str


class VideoURLPart(Part, tag="video_url"):
    """A video by URL or data URI (VLM agents extension)."""

    video_url: VideoURL


class AudioURL(Strict):
    url: str


class AudioURLPart(Part, tag="audio_url"):
    """An audio clip by URL or data URI (VLM agents extension)."""

    audio_url: AudioURL


class FileURL(Strict):
    url: str


class FileURLPart(Part, tag="file_url"):
    """A document by URL or data URI (VLM agents extension)."""

    file_url: FileURL


UserPart = (
    TextPart
    | ImagePart
    | InputAudioPart
    | FilePart
    | InputFilePart
    | VideoURLPart
    | AudioURLPart
    | FileURLPart
)
AssistantPart = TextPart | RefusalPart
