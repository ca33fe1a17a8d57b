"""The canonical chat request.

Field names follow the OpenAI Chat Completions API, the lingua franca every
backend plugin translates from, so that decoding the OpenAI wire format is a
single typed ``msgspec`` pass with no intermediate dicts. Every optional field
defaults to ``UNSET``: a field the client left out is ``UNSET``, one it sent as
``null`` is ``None``. Constraints are the ones OpenAI documents; a violation
becomes a 400 whose ``param`` is the field's path.

What a client sends that asks for nothing (an empty container, an output
field replayed from an earlier answer) has no place here, so a request
without it costs one pass; one with it is decoded as it was sent and settled
into this model (see :mod:`.replayed`).

Top-level fields this model does not know are kept beside the request (see
:func:`unknown_fields`) so that a backend's compatibility matrix can decide
about them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .messages import Message
from .parts import TextPart
from .strict import Strict
from .tools import FunctionCallOption, FunctionDefinition, Tool, ToolChoice, require_object
from .vlm import VlmRun

__all__ = [
    "AudioOutput",
    "ChatRequest",
    "JSONObjectFormat",
    "JSONSchema",
    "JSONSchemaFormat",
    "Moderation",
    "ModerationPolicy",
    "ModerationPolicyMode",
    "Prediction",
    "PromptCacheOptions",
    "ResponseFormat",
    "StreamOptions",
    "TextFormat",
    "UserLocation",
    "UserLocationApproximate",
    "VoiceID",
    "WebSearchOptions",
    "set_unknown_fields",
    "unknown_fields",
]

Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
Bias = Annotated[int, Meta(ge=-100, le=100)]
TokenID = Annotated[str, Meta(pattern=r"^[0-9]+$")]
Positive = Annotated[int, Meta(ge=1)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
MetadataKey = Annotated[str, Meta(max_length=64)]
MetadataValue = Annotated[str, Meta(max_length=512)]

# Containers a client may send empty, as sent; the model has them non-empty.
StopList = Annotated[list[str], Meta(max_length=4)]
Tools = Annotated[list[Tool], Meta(max_length=128)]
LogitBias = dict[TokenID, Bias]
MetadataMap = Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=16)]
Modalities = list[Literal["text", "audio"]]
NOT_EMPTY = Meta(min_length=1)
"""An empty container asks for nothing: it is left out when decoding (see :mod:`.replayed`)."""


class JSONSchema(Strict):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: str | UnsetType = UNSET
    schema: msgspec.Raw | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        require_object(self.schema, "schema")


class FormatBase(Strict, tag_field="type"):
    """Base of a ``response_format``."""


class TextFormat(FormatBase, tag="text"):
    pass


class JSONObjectFormat(FormatBase, tag="json_object"):
    pass


class JSONSchemaFormat(FormatBase, tag="json_schema"):
    json_schema: JSONSchema


ResponseFormat = TextFormat | JSONObjectFormat | JSONSchemaFormat


class StreamOptions(Strict):
    include_usage: bool | UnsetType = UNSET
    include_obfuscation: bool | UnsetType = UNSET


class VoiceID(Strict):
    id: str


class AudioOutput(Strict):
    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
    voice: str | VoiceID


class Prediction(Strict):
    type: Literal["content"]
    content: str | list[TextPart]


class ModerationPolicyMode(Strict):
    mode: Literal["score", "block"]


class ModerationPolicy(Strict):
    input: ModerationPolicyMode | UnsetType | None = UNSET
    output: ModerationPolicyMode | UnsetType | None = UNSET


class Moderation(Strict):
    model: str
    policy: ModerationPolicy | UnsetType | None = UNSET


class PromptCacheOptions(Strict):
    mode: Literal["implicit", "explicit"] | UnsetType = UNSET
    ttl: Literal["30m"] | UnsetType = UNSET


class UserLocationApproximate(Strict):
    city: str | UnsetType = UNSET
    country: str | UnsetType = UNSET
    region: str | UnsetType = UNSET
    timezone: str | UnsetType = UNSET


class UserLocation(Strict):
    type: Literal["approximate"]
    approximate: UserLocationApproximate


class WebSearchOptions(Strict):
    search_context_size: Literal["low", "medium", "high"] | UnsetType = UNSET
    user_location: UserLocation | UnsetType | None = UNSET


class ChatRequest(Strict, dict=True):
    """A chat completion request, as sent by the client."""

    messages: Annotated[list[Message], Meta(min_length=1)]
    model: Annotated[str, Meta(min_length=1)]
    audio: AudioOutput | UnsetType | None = UNSET
    frequency_penalty: Penalty | UnsetType | None = UNSET
    function_call: Literal["none", "auto"] | FunctionCallOption | UnsetType = UNSET
    functions: (
        Annotated[list[FunctionDefinition], Meta(min_length=1, max_length=128)] | UnsetType
    ) = UNSET
    logit_bias: Annotated[LogitBias, NOT_EMPTY] | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    max_completion_tokens: Positive | UnsetType | None = UNSET
    max_tokens: Positive | UnsetType | None = UNSET
    metadata: Annotated[MetadataMap, NOT_EMPTY] | UnsetType | None = UNSET
    modalities: Annotated[Modalities, NOT_EMPTY] | UnsetType | None = UNSET
    moderation: Moderation | UnsetType | None = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    prediction: Prediction | UnsetType | None = UNSET
    presence_penalty: Penalty | UnsetType | None = UNSET
    prompt_cache_key: str | UnsetType | None = UNSET
    prompt_cache_options: PromptCacheOptions | UnsetType = UNSET
    prompt_cache_retention: Literal["in_memory", "24h"] | UnsetType | None = UNSET
    reasoning_effort: (
        Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | UnsetType | None
    ) = UNSET
    response_format: ResponseFormat | UnsetType = UNSET
    safety_identifier: Annotated[str, Meta(max_length=128)] | UnsetType | None = UNSET
    seed: Int64 | UnsetType | None = UNSET
    service_tier: (
        Literal["auto", "default", "flex", "scale", "priority", "fast"] | UnsetType | None
    ) = UNSET
    stop: str | Annotated[StopList, NOT_EMPTY] | UnsetType | None = UNSET
    store: bool | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | UnsetType | None = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    tools: Annotated[Tools, NOT_EMPTY] | UnsetType = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | UnsetType | None = UNSET
    user: str | UnsetType = UNSET
    verbosity: Literal["low", "medium", "high"] | UnsetType | None = UNSET
    web_search_options: WebSearchOptions | UnsetType = UNSET
    # VLM agents extensions (sent by the OpenAI SDK through ``extra_body``).
    session_id: str | UnsetType | None = UNSET
    vlmrun: VlmRun | UnsetType = UNSET

    @property
    def streaming(self) -> bool:
        """Whether the client asked for a stream."""
        return self.stream is True

    @property
    def wants_usage(self) -> bool:
        """Whether a stream should end with a usage chunk (``stream_options.include_usage``)."""
        options = self.stream_options
        return isinstance(options, StreamOptions) and options.include_usage is True

    @property
    def session(self) -> str | None:
        """The session id: top-level ``session_id``, else ``vlmrun.metadata.session_id``."""
        if isinstance(self.session_id, str):
            return self.session_id
        vlmrun = self.vlmrun
        if vlmrun is not UNSET and vlmrun.metadata is not UNSET:
            return vlmrun.metadata.session_id
        return None


_EMPTY: Mapping[str, msgspec.Raw] = {}


def unknown_fields(request: ChatRequest) -> Mapping[str, msgspec.Raw]:
    """Top-level fields the client sent that the model does not know, as raw JSON."""
    found: Mapping[str, msgspec.Raw] = request.__dict__.get("unknown_fields", _EMPTY)
    return found


def set_unknown_fields(request: ChatRequest, fields: Mapping[str, msgspec.Raw]) -> None:
    """Replace the unknown top-level fields kept beside ``request``."""
    if fields:
        request.__dict__["unknown_fields"] = dict(fields)
    else:
        request.__dict__.pop("unknown_fields", None)


# Not in __all__: how the decoder hands the replay policy's findings to the matrix.
_NONE: list[str] = []


def replayed_fields(request: ChatRequest) -> list[str]:
    """Paths of the replayed output fields taken off the request (see :mod:`.replayed`)."""
    found: list[str] = request.__dict__.get("replayed", _NONE)
    return found


def set_replayed(request: ChatRequest, paths: list[str]) -> None:
    """Keep beside ``request`` the paths of the replayed fields taken off it."""
    request.__dict__["replayed"] = paths
