"""The canonical model covers the whole request the installed ``openai`` SDK can send.

The SDK's own TypedDicts are read and walked side by side with the model's
structs: every field, whether it is required, whether it may be ``null``, its
allowed literal values, and every nested shape (content parts, tools, tool
choices, response formats, audio, prediction, moderation, web search, prompt
cache options).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi
import pytest
import typing_extensions
from msgspec import UNSET
from openai.types.chat import completion_create_params as sdk

from translator._model import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    DeveloperMessage,
    FunctionDefinition,
    FunctionMessage,
    ImagePart,
    ImageURL,
    InputFilePart,
    JSONSchema,
    RequestMetadata,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    VlmRun,
    set_unknown_fields,
    tag_of,
    unknown_fields,
)
from translator._model.replayed import ReplayedRequest

# Fields the model has that the SDK's TypedDicts do not: the VLM agents
# extensions, ``stream`` (declared on the SDK's streaming/non-streaming
# subclasses), and ``strict`` on legacy ``functions`` (shared FunctionDefinition).
EXTENSIONS = {"session_id", "vlmrun", "stream", "functions[].strict"}


def _is_typeddict(tp: object) -> bool:
    return typing.is_typeddict(tp) or typing_extensions.is_typeddict(tp)


def _required(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Required, typing_extensions.Required)


def _bare(hint: Any) -> Any:
    while typing.get_origin(hint) in (
        typing.Required,
        typing_extensions.Required,
        typing.NotRequired,
        typing_extensions.NotRequired,
        typing.Annotated,
    ):
        hint = typing.get_args(hint)[0]
    return hint


def _walk_hint(hint: Any) -> Iterator[Any]:
    """Every type mentioned in a hint, through unions, containers and aliases."""
    hint = _bare(hint)
    yield hint
    if not _is_typeddict(hint):
        for arg in typing.get_args(hint):
            if typing.get_origin(hint) is not typing.Literal:
                yield from _walk_hint(arg)


def _sdk_typeddicts(hint: Any) -> list[Any]:
    return [t for t in _walk_hint(hint) if _is_typeddict(t)]


def _sdk_nullable(hint: Any) -> bool:
    return any(t is type(None) for t in _walk_hint(hint))


def _sdk_literals(hint: Any) -> set[object] | None:
    """The literal values a hint allows, or None when any string will do."""
    found = list(_walk_hint(hint))
    if str in found:
        return None
    literals = [t for t in found if typing.get_origin(t) is typing.Literal]
    values = {v for t in literals for v in typing.get_args(t)}
    return values or None


def _walk_info(info: mi.Type) -> Iterator[mi.Type]:
    """Every type in a msgspec type, through unions, containers and constraints."""
    yield info
    if isinstance(info, mi.Metadata):
        yield from _walk_info(info.type)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            yield from _walk_info(member)
    elif isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        yield from _walk_info(info.item_type)
    elif isinstance(info, mi.DictType):
        yield from _walk_info(info.value_type)


def _model_structs(info: mi.Type) -> list[mi.StructType]:
    return [t for t in _walk_info(info) if isinstance(t, mi.StructType)]


def _model_nullable(info: mi.Type) -> bool:
    return any(isinstance(t, mi.NoneType) for t in _walk_info(info))


def _model_literals(info: mi.Type) -> set[object] | None:
    found = list(_walk_info(info))
    if any(isinstance(t, mi.StrType) for t in found):
        return None
    values = {v for t in found if isinstance(t, mi.LiteralType) for v in t.values}
    return values or None


def _pair(td: Any, structs: list[mi.StructType]) -> mi.StructType | None:
    """The model struct that stands for SDK TypedDict ``td``: by tag, else the only one."""
    hints = typing.get_type_hints(td, include_extras=True)
    for struct in structs:
        tag_field = struct.tag_field
        if tag_field in hints and struct.tag in (_sdk_literals(hints[tag_field]) or ()):
            return struct
    untagged = [s for s in structs if s.tag_field is None]
    return untagged[0] if len(untagged) == 1 else None


def _compare(td: Any, struct: mi.StructType, path: str, problems: list[str]) -> set[str]:
    """Compare SDK TypedDict ``td`` with ``struct``; return every path visited."""
    fields = {f.encode_name: f for f in struct.fields}
    hints = typing.get_type_hints(td, include_extras=True)
    seen: set[str] = set()
    for key, hint in hints.items():
        where = f"{path}.{key}" if path else key
        seen.add(where)
        if key == struct.tag_field:
            continue
        field = fields.get(key)
        if field is None:
            problems.append(f"{where}: sent by the SDK, missing from the model")
            continue
        if _required(hint) != field.required:
            problems.append(f"{where}: required={_required(hint)} in SDK, {field.required} here")
        if _sdk_nullable(hint) != _model_nullable(field.type):
            problems.append(f"{where}: nullable={_sdk_nullable(hint)} in SDK")
        if _sdk_literals(hint) != _model_literals(field.type):
            problems.append(
                f"{where}: values {_sdk_literals(hint)} in SDK, {_model_literals(field.type)} here"
            )
        nested = _sdk_typeddicts(hint)
        structs = _model_structs(field.type)
        for inner in nested:
            paired = _pair(inner, structs)
            if paired is None:
                problems.append(f"{where}: no struct stands for the SDK's {inner.__name__}")
                continue
            many = any(isinstance(t, mi.ListType) for t in _walk_info(field.type))
            seen |= _compare(inner, paired, f"{where}[]" if many else where, problems)
    for key in fields.keys() - hints.keys():
        where = f"{path}.{key}".lstrip(".")
        if where not in EXTENSIONS and key != struct.tag_field:
            problems.append(f"{path}.{key}: in the model, unknown to the SDK")
    return seen


def _stream_hints() -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for cls in (sdk.CompletionCreateParamsStreaming, sdk.CompletionCreateParamsNonStreaming):
        hints.update(typing.get_type_hints(cls, include_extras=True))
    return hints


def test_every_top_level_sdk_field_is_a_model_field() -> None:
    sent = set(typing.get_type_hints(sdk.CompletionCreateParamsBase)) | {"stream"}
    assert set(_stream_hints()) == sent
    assert sent <= set(ChatRequest.__struct_encode_fields__)
    assert set(ChatRequest.__struct_encode_fields__) - sent == {"session_id", "vlmrun"}


def test_model_matches_the_sdk_shapes_all_the_way_down() -> None:
    problems: list[str] = []
    info = mi.type_info(ChatRequest)
    assert isinstance(info, mi.StructType)
    seen = _compare(sdk.CompletionCreateParamsBase, info, "", problems)
    assert problems == []
    assert {
        "messages[].content[].prompt_cache_breakpoint.ttl",
        "messages[].content[].image_url.detail",
        "messages[].content[].input_audio.format",
        "messages[].content[].file.file_id",
        "messages[].content[].refusal",
        "messages[].tool_calls[].custom.input",
        "messages[].function_call.arguments",
        "messages[].audio.id",
        "messages[].tool_call_id",
        "audio.voice.id",
        "function_call.name",
        "functions[].parameters",
        "moderation.policy.output.mode",
        "prediction.content[].text",
        "prompt_cache_options.ttl",
        "response_format.json_schema.strict",
        "stream_options.include_obfuscation",
        "tool_choice.allowed_tools.tools",
        "tool_choice.custom.name",
        "tool_choice.function.name",
        "tools[].custom.format.grammar.syntax",
        "tools[].function.strict",
        "web_search_options.user_location.approximate.timezone",
    } <= seen


def test_what_clients_replay_is_all_the_request_as_sent_adds_to_the_sdk_shapes() -> None:
    problems: list[str] = []
    info = mi.type_info(ReplayedRequest)
    assert isinstance(info, mi.StructType)
    _compare(sdk.CompletionCreateParamsBase, info, "", problems)
    assert sorted(problems) == [
        "messages[].annotations: in the model, unknown to the SDK",
        "messages[].name: in the model, unknown to the SDK",
        "messages[].reasoning: in the model, unknown to the SDK",
        "messages[].reasoning_content: in the model, unknown to the SDK",
        "messages[].tool_calls: nullable=False in SDK",
    ]


def test_the_comparison_notices_a_missing_field() -> None:
    class Narrow(msgspec.Struct):
        messages: list[str]
        temperature: float = 0.0
        service_tier: Literal["auto"] = "auto"

    problems: list[str] = []
    info = mi.type_info(Narrow)
    assert isinstance(info, mi.StructType)
    _compare(sdk.CompletionCreateParamsBase, info, "", problems)
    assert "model: sent by the SDK, missing from the model" in problems
    assert any(p.startswith("messages: no struct stands for") for p in problems)
    assert "temperature: nullable=True in SDK" in problems
    assert any(p.startswith("service_tier: values") for p in problems)


def test_messages_are_tagged_by_every_role() -> None:
    roles = {
        tag_of(cls("x", name="n") if cls is not ToolMessage else cls("x", "id"))  # type: ignore[call-arg]
        for cls in (SystemMessage, DeveloperMessage, UserMessage, ToolMessage)
    }
    roles |= {tag_of(AssistantMessage()), tag_of(FunctionMessage(None, "f"))}
    assert roles == {"system", "developer", "user", "assistant", "tool", "function"}


def test_optional_fields_tell_unset_from_null() -> None:
    absent = msgspec.json.decode(
        b'{"model":"m","messages":[{"role":"user","content":"x"}]}', type=ChatRequest
    )
    null = msgspec.json.decode(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":null}',
        type=ChatRequest,
    )
    assert absent.temperature is UNSET
    assert null.temperature is None
    assert b"temperature" not in msgspec.json.encode(absent)
    assert b'"temperature":null' in msgspec.json.encode(null)


def test_request_metadata_defaults_are_the_documented_ones() -> None:
    assert RequestMetadata() == RequestMetadata(
        environment="prod",
        session_id=None,
        allow_training=True,
        allow_retention=True,
        allow_logging=True,
        extra=None,
    )


@pytest.mark.parametrize(
    ("request_", "session"),
    [
        (ChatRequest([UserMessage("x")], "m"), None),
        (ChatRequest([UserMessage("x")], "m", session_id="top"), "top"),
        (ChatRequest([UserMessage("x")], "m", vlmrun=VlmRun(domain="d")), None),
        (
            ChatRequest(
                [UserMessage("x")], "m", vlmrun=VlmRun(metadata=RequestMetadata(session_id="meta"))
            ),
            "meta",
        ),
        (
            ChatRequest(
                [UserMessage("x")],
                "m",
                session_id="top",
                vlmrun=VlmRun(metadata=RequestMetadata(session_id="meta")),
            ),
            "top",
        ),
    ],
)
def test_session_prefers_top_level_then_metadata(
    request_: ChatRequest, session: str | None
) -> None:
    assert request_.session == session


def test_streaming_is_true_only_for_stream_true() -> None:
    base = ChatRequest([UserMessage("x")], "m")
    assert base.streaming is False
    assert ChatRequest([UserMessage("x")], "m", stream=None).streaming is False
    assert ChatRequest([UserMessage("x")], "m", stream=False).streaming is False
    assert ChatRequest([UserMessage("x")], "m", stream=True).streaming is True


def test_unknown_fields_are_kept_beside_the_request_and_can_be_replaced() -> None:
    request = ChatRequest([UserMessage("x")], "m")
    assert dict(unknown_fields(request)) == {}
    set_unknown_fields(request, {"foo": msgspec.Raw(b"[1,2]")})
    assert {k: bytes(v) for k, v in unknown_fields(request).items()} == {"foo": b"[1,2]"}
    set_unknown_fields(request, {})
    assert dict(unknown_fields(request)) == {}
    assert b"foo" not in msgspec.json.encode(request)


def test_tag_of_names_parts_and_messages() -> None:
    assert tag_of(TextPart("x")) == "text"
    assert tag_of(ImagePart(ImageURL("u"))) == "image_url"
    assert tag_of(InputFilePart("file-1")) == "input_file"
    assert tag_of(UserMessage("x")) == "user"


def test_schemas_must_be_json_objects_but_are_not_parsed() -> None:
    spaced = FunctionDefinition("f", parameters=msgspec.Raw(b' \n {"type": "object"}'))
    assert bytes(spaced.parameters) == b' \n {"type": "object"}'  # type: ignore[arg-type]
    assert JSONSchema("n", schema=msgspec.Raw(b"{}")).schema is not UNSET
    assert FunctionDefinition("f").parameters is UNSET
    with pytest.raises(ValueError, match="Expected `object`, got `array`"):
        FunctionDefinition("f", parameters=msgspec.Raw(b"[]"))
    with pytest.raises(ValueError, match="Expected `object`, got `str`"):
        JSONSchema("n", schema=msgspec.Raw(b'"{}"'))


def _reachable(info: mi.Type, seen: dict[type, mi.StructType]) -> dict[type, mi.StructType]:
    """Every struct type reachable from ``info``, by class."""
    for t in _walk_info(info):
        if isinstance(t, mi.StructType) and t.cls not in seen:
            seen[t.cls] = t
            for field in t.fields:
                _reachable(field.type, seen)
    return seen


def test_every_request_struct_refuses_unknown_keys() -> None:
    structs = _reachable(mi.type_info(ChatRequest), {})
    assert len(structs) > 40
    assert [c.__name__ for c, t in structs.items() if not t.forbid_unknown_fields] == []


@pytest.mark.parametrize("root", [ChatResponse, ChatChunk])
def test_every_response_struct_tolerates_unknown_keys(root: type) -> None:
    structs = _reachable(mi.type_info(root), {})
    assert {c.__name__ for c in structs} >= {"Usage", "PromptTokensDetails"}
    assert [c.__name__ for c, t in structs.items() if t.forbid_unknown_fields] == []
