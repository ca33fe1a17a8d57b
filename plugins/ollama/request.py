"""Canonical requests as Ollama ``/api/chat`` bodies: pure, no I/O.

A forced tool call (a named function, or ``tool_choice: "required"``) is
asked for as ``format``, the call's JSON schema, with an instruction naming the
call and without the tools; the backend turns the JSON answer into the call.

Images go to a message's ``images`` as bare base64: a data URI is sliced
(never decoded), an http(s) URL must have been fetched beforehand and its
bytes encoded; the caller passes those by ``param`` path (see
:func:`remote_images`). Without them, such a URL raises
:class:`~translator.errors.NeedsIOError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec import UNSET

from translator.plugin_api import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    FetchRefusedError,
    FunctionMessage,
    FunctionToolCall,
    ImagePart,
    InvalidRequestError,
    JSONObjectFormat,
    JSONSchemaFormat,
    Message,
    NeedsIOError,
    SystemMessage,
    TextPart,
    ToolMessage,
    UnsupportedFieldError,
    UserMessage,
    forced_call,
    split_data_uri,
    tag_of,
)

from . import native

__all__ = ["build", "remote_images"]

_JSON = msgspec.Raw(b'"json"')
_EMPTY_OBJECT = msgspec.Raw(b"{}")
_object_check = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def _is_remote(url: str) -> bool:
    head = url[:8].lower()
    return head.startswith(("http://", "https://"))


def remote_images(request: ChatRequest) -> list[tuple[str, str]]:
    """``(param, url)`` of every image that must be fetched before :func:`build`."""
    found: list[tuple[str, str]] = []
    for i, message in enumerate(request.messages):
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if isinstance(part, ImagePart) and _is_remote(part.image_url.url):
                    found.append((f"messages[{i}].content[{j}].image_url.url", part.image_url.url))
    return found


def build(
    request: ChatRequest,
    *,
    model: str,
    stream: bool,
    fetched: Mapping[str, str] | None = None,
) -> native.ChatRequest:
    """The Ollama request for ``request``; ``fetched`` maps image params to base64."""
    names: dict[str, str] = {}
    messages = [_message(m, i, names, fetched) for i, m in enumerate(request.messages)]
    tools = request.tools
    forced = forced_call(request) if request.tool_choice is not UNSET else None
    if forced is not None:
        # Ollama cannot be made to call a tool: its answer is held to the call's
        # schema instead, and becomes the call (see translator._forced_tools).
        messages.append(native.Message("system", forced.instruction))
        return native.ChatRequest(model, messages, stream, _options(request), forced.schema, UNSET)
    if request.tool_choice == "none":
        tools = UNSET
    elif tools is not UNSET:
        for k, tool in enumerate(tools):
            if tag_of(tool) != "function":
                raise _unsupported(f"'{tag_of(tool)}' tools", f"tools[{k}].type")
    response_format = request.response_format
    return native.ChatRequest(
        model,
        messages,
        stream,
        _options(request),
        UNSET if response_format is UNSET else _format(response_format),
        tools,
    )


_SYSTEM = (SystemMessage, DeveloperMessage)


def _message(
    message: Message, i: int, names: dict[str, str], fetched: Mapping[str, str] | None
) -> native.AnyMessage:
    if isinstance(message, UserMessage):
        content = message.content
        if isinstance(content, str):
            # Already Ollama's shape ({"role": "user", "content": ...}) unless it has a name.
            return message if message.name is UNSET else native.Message("user", content)
        texts: list[str] = []
        images: list[str] = []
        for j, part in enumerate(content):
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ImagePart):
                images.append(_image(part.image_url.url, i, j, fetched))
            else:
                raise _unsupported(f"'{tag_of(part)}' parts", f"messages[{i}].content[{j}]")
        return native.Message("user", "\n".join(texts), images or UNSET)
    if isinstance(message, _SYSTEM):
        text = message.content
        if isinstance(text, str):
            if message.name is UNSET and isinstance(message, SystemMessage):
                return message  # already Ollama's shape
            return native.Message("system", text)
        return native.Message("system", _text(text))
    if isinstance(message, AssistantMessage):
        return _assistant(message, i, names)
    if isinstance(message, ToolMessage):
        call_id = message.tool_call_id
        result = message.content
        return native.Message(
            "tool",
            result if isinstance(result, str) else _text(result),
            UNSET,
            UNSET,
            names.get(call_id, UNSET),
            call_id,
        )
    if isinstance(message, FunctionMessage):
        return native.Message("tool", message.content or "", tool_name=message.name)
    raise _unsupported(f"'{tag_of(message)}' messages", f"messages[{i}]")  # pragma: no cover


def _assistant(message: AssistantMessage, i: int, names: dict[str, str]) -> native.Message:
    content = message.content
    if isinstance(content, list):
        text = "".join(p.text if isinstance(p, TextPart) else p.refusal for p in content)
    else:
        text = content or ""
    if not text and isinstance(message.refusal, str):
        text = message.refusal
    calls: list[native.ToolCall] = []
    tool_calls = message.tool_calls
    if tool_calls:
        for k, call in enumerate(tool_calls):
            if not isinstance(call, FunctionToolCall):
                raise _unsupported("custom tool calls", f"messages[{i}].tool_calls[{k}].type")
            function = call.function
            names[call.id] = function.name
            arguments = _arguments(function.arguments, i, k)
            calls.append(native.ToolCall(native.Function(function.name, arguments), call.id))
    legacy = message.function_call
    if legacy is not UNSET and legacy is not None:
        arguments = _arguments(legacy.arguments, i, None)
        calls.append(native.ToolCall(native.Function(legacy.name, arguments)))
    return native.Message("assistant", text, UNSET, calls or UNSET)


def _arguments(arguments: str, i: int, k: int | None) -> msgspec.Raw:
    """A tool call's arguments as the JSON object Ollama wants, checked, not re-encoded.

    ``k`` is the call's index in ``messages[i].tool_calls``; None for ``function_call``.
    """
    raw = arguments.encode()
    try:
        _object_check(raw)
    except msgspec.DecodeError as exc:
        if not arguments.strip():
            return _EMPTY_OBJECT
        where = "function_call" if k is None else f"tool_calls[{k}].function"
        param = f"messages[{i}].{where}.arguments"
        raise InvalidRequestError(
            f"Invalid value for '{param}': the arguments must be a JSON object ({exc}).",
            param=param,
            code="invalid_value",
        ) from None
    return msgspec.Raw(raw)


def _image(url: str, i: int, j: int, fetched: Mapping[str, str] | None) -> str:
    if url.startswith("data:"):
        data = split_data_uri(url)
        if data is not None:
            media_type, payload = data
            if media_type.startswith("image/"):
                return payload
            param = f"messages[{i}].content[{j}].image_url.url"
            raise InvalidRequestError(
                f"Invalid value for '{param}': the data URI is {media_type or 'untyped'}, "
                "not an image.",
                param=param,
                code="invalid_value",
            )
    param = f"messages[{i}].content[{j}].image_url.url"
    if _is_remote(url):
        if fetched is None:
            raise NeedsIOError(
                f"The image at '{param}' must be fetched before the request can be translated.",
                param=param,
            )
        return fetched[param]
    raise FetchRefusedError(
        f"Invalid value for '{param}': expected an http(s) URL or a base64 data URI.",
        param=param,
    )


def _text(content: str | list[TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content)


def _options(request: ChatRequest) -> native.Options | msgspec.UnsetType:
    limit = request.max_completion_tokens
    if not isinstance(limit, int):
        limit = request.max_tokens
    temperature = request.temperature
    top_p = request.top_p
    seed = request.seed
    presence = request.presence_penalty
    frequency = request.frequency_penalty
    stop = request.stop
    if (
        not isinstance(limit, int)
        and temperature is UNSET
        and top_p is UNSET
        and seed is UNSET
        and presence is UNSET
        and frequency is UNSET
        and stop is UNSET
    ):
        return UNSET  # the usual case: no options at all
    options = native.Options(
        limit if isinstance(limit, int) else UNSET,
        UNSET if temperature is None else temperature,
        UNSET if top_p is None else top_p,
        UNSET if seed is None else seed,
        [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else UNSET,
        UNSET if presence is None else presence,
        UNSET if frequency is None else frequency,
    )
    return UNSET if options == _NO_OPTIONS else options


_NO_OPTIONS = native.Options()


def _format(response_format: object) -> msgspec.Raw | msgspec.UnsetType:
    if isinstance(response_format, JSONObjectFormat):
        return _JSON
    if isinstance(response_format, JSONSchemaFormat):
        schema = response_format.json_schema.schema
        return _JSON if schema is UNSET else schema
    return UNSET


def _unsupported(what: str, param: str) -> UnsupportedFieldError:
    return UnsupportedFieldError(
        f"The ollama backend cannot send {what}.", param=param, code="unsupported_value"
    )
