"""A chat request as an agent execution: the prompt, the inputs, the config.

The prompt
----------
The agent takes one prompt, so the conversation is rendered as text, in
paragraphs separated by a blank line:

1. the text of every system and developer message, in their order;
2. every user and assistant message before the last user message, each as
   ``User: ...`` or ``Assistant: ...`` (a ``name`` shows as ``User (ana): ...``);
3. the last user message: its text alone when nothing came before it,
   otherwise ``User: ...`` like the turns before it.

The agent answers the last user message (or the result of a tool call), so
the conversation must end with one (a 400 otherwise). An assistant's earlier
tool calls show as ``Assistant: called name({...})`` and a tool's result as
``Tool (name): ...``.

A forced tool call
------------------
The agent cannot be made to call a client's tool, but it can answer in a JSON
schema: a forced call (a named function, or ``"required"``) becomes
``config.json_schema`` with an instruction at the end of the prompt, and the
answer is returned as the call (see :mod:`translator._forced_tools`). Tools
without a forced call are refused on ``tools``: the agent cannot decide to
call one.

The inputs
----------
Media parts become ``inputs``, an object of content parts shaped as the
SDK's ``MessageContent``, keyed by kind and order over the whole conversation:
``image_1``, ``image_2``, ``video_1``, ``audio_1``, ``file_1``. Where a part
stood, the prompt says ``[image_1]``. URLs and data URIs go as given:

==================  ==========================================================
``image_url``       ``{"type": "image_url", "image_url": {"url", "detail"}}``
``video_url``       ``{"type": "video_url", "video_url": {"url"}}``
``audio_url``       ``{"type": "audio_url", "audio_url": {"url"}}``
``input_audio``     an ``audio_url`` whose url is ``data:audio/wav;base64,...``
                    (``audio/mpeg`` for mp3)
``file_url``        ``{"type": "file_url", "file_url": {"url"}}``
``file``            ``file_data`` as a ``file_url`` (a data URI; bare base64 is
                    given the type its filename suggests); ``file_id`` as an
                    ``input_file``
``input_file``      ``{"type": "input_file", "file_id"}``, with the agent's id
                    for a file uploaded to this translator
==================  ==========================================================
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Final

import msgspec
from msgspec import UNSET

from translator.plugin_api import (
    AssistantMessage,
    AudioURL,
    AudioURLPart,
    ChatRequest,
    DeveloperMessage,
    FilePart,
    FileURL,
    FileURLPart,
    FunctionToolCall,
    ImagePart,
    ImageURL,
    InputAudioPart,
    InputFilePart,
    InvalidRequestError,
    JSONObjectFormat,
    JSONSchemaFormat,
    RequestMetadata,
    SystemMessage,
    TextPart,
    ToolMessage,
    UnsupportedFieldError,
    UserMessage,
    UserPart,
    VideoURLPart,
    forced_call,
    tag_of,
)

from .wire import AgentConfig, ExecuteRequest

__all__ = ["ANY_OBJECT", "DEFAULT_MODEL", "Execute", "build_execute", "file_ids", "wants_json"]

DEFAULT_MODEL: Final = "vlmrun-orion-1:auto"
ANY_OBJECT: Final = msgspec.Raw(b'{"type":"object"}')
"""The schema sent for ``json_object`` (and a ``json_schema`` without one)."""

_KIND: Final[dict[type, str]] = {
    ImagePart: "image",
    VideoURLPart: "video",
    AudioURLPart: "audio",
    InputAudioPart: "audio",
    FileURLPart: "file",
    FilePart: "file",
    InputFilePart: "file",
}
_AUDIO_TYPE: Final = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_NUMBER: Final = (float, int)
_JSON_FORMATS: Final = (JSONSchemaFormat, JSONObjectFormat)


class Execute(msgspec.Struct):
    """An execute request, and the prompt it carries (for usage estimates)."""

    request: ExecuteRequest
    prompt: str


def file_ids(request: ChatRequest) -> dict[str, str]:
    """Every file id the conversation names (``input_file``, ``file.file_id``) -> where, first."""
    found: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if isinstance(message, UserMessage) and not isinstance(message.content, str):
            for j, part in enumerate(message.content):
                if isinstance(part, InputFilePart):
                    found.setdefault(part.file_id, f"messages[{i}].content[{j}].file_id")
                elif isinstance(part, FilePart) and isinstance(part.file.file_id, str):
                    found.setdefault(part.file.file_id, f"messages[{i}].content[{j}].file.file_id")
    return found


def wants_json(request: ChatRequest) -> bool:
    """Whether the client asked for a JSON answer."""
    return isinstance(request.response_format, _JSON_FORMATS)


def build_execute(
    request: ChatRequest,
    *,
    model: str,
    agent_files: Mapping[str, str],
    toolsets: list[str] | None = None,
    backend: str = "vlm-agent",
) -> Execute:
    """The execute request for ``request``; ``agent_files`` maps our file ids to the agent's.

    Raises :class:`InvalidRequestError` for a conversation the agent cannot be
    given (see the module docs); ``backend`` names the backend in its message.
    """
    render = _Renderer(agent_files, backend)
    prompt = render.conversation(request)
    forced = None
    if request.tools is not UNSET:
        forced = forced_call(request)
        if forced is None:
            raise UnsupportedFieldError(
                f"The {backend} backend does not support 'tools' without a forced "
                "'tool_choice' (a named function, or 'required'): the agent cannot decide "
                "to call a client's tool.",
                param="tools",
                code="unsupported_parameter",
            )
        prompt = f"{prompt}\n\n{forced.instruction}"
    config = AgentConfig(prompt=prompt)
    fmt = request.response_format
    if forced is not None:
        config.json_schema = forced.schema
    elif fmt is not UNSET:
        if isinstance(fmt, JSONSchemaFormat):
            schema = fmt.json_schema.schema
            config.json_schema = ANY_OBJECT if schema is UNSET else schema
        elif isinstance(fmt, JSONObjectFormat):
            config.json_schema = ANY_OBJECT
    temperature = request.temperature
    if isinstance(temperature, _NUMBER):
        config.temperature = float(temperature)
    if isinstance(request.service_tier, str):
        config.service_tier = request.service_tier
    name: str | None = None
    metadata: RequestMetadata | None = None
    vlmrun = request.vlmrun
    if vlmrun is not UNSET:
        if vlmrun.domain is not UNSET:
            name = vlmrun.domain
        if vlmrun.metadata is not UNSET:
            metadata = vlmrun.metadata
    session_id = request.session_id
    if metadata is None:
        metadata = RequestMetadata(session_id=session_id if isinstance(session_id, str) else None)
    elif isinstance(session_id, str) and metadata.session_id != session_id:
        metadata = msgspec.structs.replace(metadata, session_id=session_id)
    execute = ExecuteRequest(
        model=model,
        name=name,
        batch=True,
        inputs=render.inputs or None,
        config=config,
        metadata=metadata,
        toolsets=toolsets if toolsets is not None else UNSET,
    )
    return Execute(execute, prompt)


class _Renderer:
    """Renders messages into prompt text, collecting inputs as it goes."""

    __slots__ = ("agent_files", "backend", "called", "counts", "inputs")

    def __init__(self, agent_files: Mapping[str, str], backend: str) -> None:
        self.agent_files = agent_files
        self.backend = backend
        self.called: dict[str, str] = {}
        """Tool call ids -> the function called, for the results that follow."""
        self.inputs: dict[str, UserPart] = {}
        self.counts: dict[str, int] = {}

    def conversation(self, request: ChatRequest) -> str:
        messages = request.messages
        last_user = len(messages) - 1
        while last_user >= 0 and not isinstance(messages[last_user], _ANSWERED):
            last_user -= 1
        if last_user < 0:
            raise InvalidRequestError(
                f"The {self.backend} backend needs a user message to answer.", param="messages"
            )
        instructions: list[str] = []
        turns: list[str] = []
        last_text = ""
        for i, message in enumerate(messages):
            if isinstance(message, UserMessage):
                content = message.content
                last_text = content if isinstance(content, str) else self.user(content, i)
                if i == last_user and not turns:
                    turns.append(last_text)  # the only turn: a question needs no transcript
                else:
                    turns.append(_turn("User", message.name, last_text))
            elif isinstance(message, ToolMessage):
                result = message.content
                turns.append(_turn("Tool", self.called.get(message.tool_call_id), _plain(result)))
            elif isinstance(message, _INSTRUCTIONS):
                text = message.content
                instructions.append(text if isinstance(text, str) else _plain(text))
            elif isinstance(message, AssistantMessage):
                if i > last_user:
                    raise InvalidRequestError(
                        f"The {self.backend} backend answers the last user message, so the "
                        "conversation must end with one.",
                        param=f"messages[{i}]",
                    )
                text = _assistant(message, i, self.backend, self.called)
                turns.append(_turn("Assistant", message.name, text))
            else:
                # Roles the matrix rejects never get here; say so if one does.
                raise InvalidRequestError(
                    f"The {self.backend} backend cannot send a '{tag_of(message)}' "
                    "message to the agent.",
                    param=f"messages[{i}].role",
                )
        if len(turns) == 1:
            turns[0] = last_text  # a single question needs no transcript
        instructions += turns
        return "\n\n".join([p for p in instructions if p])

    def user(self, content: list[UserPart], i: int) -> str:
        """The text of a user message's parts, with a marker where each input stood."""
        lines: list[str] = []
        for j, part in enumerate(content):
            if isinstance(part, TextPart):
                lines.append(part.text)
            else:
                lines.append(f"[{self.add(part, i, j)}]")
        return "\n".join(lines)

    def add(self, part: UserPart, i: int, j: int) -> str:
        """Add ``part`` to the inputs; returns its key."""
        kind = _KIND[type(part)]
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        key = f"{kind}_{n}"
        self.inputs[key] = self.agent_part(part, i, j)
        return key

    def agent_part(self, part: UserPart, i: int, j: int) -> UserPart:
        """``part`` as the agent takes it."""
        if isinstance(part, InputFilePart):
            agent_id = self.agent_files.get(part.file_id)
            return part if agent_id is None else InputFilePart(agent_id)
        if isinstance(part, ImagePart):
            if part.prompt_cache_breakpoint is UNSET:
                return part
            return ImagePart(ImageURL(part.image_url.url, part.image_url.detail))
        if isinstance(part, InputAudioPart):
            audio = part.input_audio
            return AudioURLPart(AudioURL(f"data:{_AUDIO_TYPE[audio.format]};base64,{audio.data}"))
        if isinstance(part, FilePart):
            return self._file(part, i, j)
        return part

    def _file(self, part: FilePart, i: int, j: int) -> UserPart:
        file = part.file
        if isinstance(file.file_id, str):
            return InputFilePart(self.agent_files.get(file.file_id, file.file_id))
        if isinstance(file.file_data, str):
            data = file.file_data
            if not data.startswith("data:"):
                name = file.filename if isinstance(file.filename, str) else ""
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                data = f"data:{kind};base64,{data}"
            return FileURLPart(FileURL(data))
        raise InvalidRequestError(
            "A file part needs 'file_data' or 'file_id'.", param=f"messages[{i}].content[{j}].file"
        )


_INSTRUCTIONS: Final = (SystemMessage, DeveloperMessage)
_ANSWERED: Final = (UserMessage, ToolMessage)
"""What the agent may answer: the last user message, or a tool's result."""


def _turn(role: str, name: object, text: str) -> str:
    if isinstance(name, str) and name:
        return f"{role} ({name}): {text}"
    return f"{role}: {text}"


def _plain(content: str | list[TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content)


def _assistant(message: AssistantMessage, i: int, backend: str, called: dict[str, str]) -> str:
    for field in ("function_call", "audio"):
        if getattr(message, field):
            raise InvalidRequestError(
                f"The {backend} backend cannot replay an assistant's '{field}': the agent "
                "calls no client-defined functions.",
                param=f"messages[{i}].{field}",
            )
    pieces: list[str] = []
    for call in message.tool_calls or ():
        if isinstance(call, FunctionToolCall):
            called[call.id] = call.function.name
            pieces.append(f"called {call.function.name}({call.function.arguments})")
    content = message.content
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        pieces.extend(p.text if isinstance(p, TextPart) else p.refusal for p in content)
    if isinstance(message.refusal, str):
        pieces.append(message.refusal)
    return "\n".join(pieces)
