"""Decoding the whole Chat Completions request, as the installed ``openai`` SDK sends it.

The SDK talks to a real HTTP server on loopback; the server keeps the bytes it
received and those bytes are what :func:`translator.decode_request` decodes.
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from msgspec import UNSET
from openai.types.chat import ChatCompletion
from openai.types.chat import completion_create_params as sdk

import translator
from translator._model import (
    AllowedToolsChoice,
    AssistantMessage,
    AudioURLPart,
    ChatRequest,
    ChatResponse,
    Choice,
    CustomFormatGrammar,
    CustomTool,
    CustomToolCall,
    DeveloperMessage,
    FilePart,
    FileURLPart,
    FunctionCall,
    FunctionCallOption,
    FunctionMessage,
    FunctionTool,
    FunctionToolCall,
    ImagePart,
    InputAudioPart,
    InputFilePart,
    JSONObjectFormat,
    JSONSchemaFormat,
    NamedCustomChoice,
    NamedFunctionChoice,
    RefusalPart,
    RequestMetadata,
    ResponseMessage,
    SystemMessage,
    TextFormat,
    TextPart,
    ToolMessage,
    Usage,
    UserMessage,
    VideoURLPart,
    VoiceID,
    unknown_fields,
)
from translator._openai import decode_request, encode_request, encode_response, sse_frame
from translator._openai.sse import SSE_DONE
from translator._streaming import ChunkStream

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGAAAAAF"
    "AAHdZ7RkAAAAAElFTkSuQmCC"
)

MESSAGES: list[dict[str, Any]] = [
    {
        "role": "developer",
        "content": [
            {
                "type": "text",
                "text": "Be brief.",
                "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"},
            }
        ],
        "name": "ops",
    },
    {"role": "system", "content": "You are a helpful assistant.", "name": "sys"},
    {
        "role": "user",
        "name": "ana",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {
                "type": "image_url",
                "image_url": {"url": PNG, "detail": "original"},
                "prompt_cache_breakpoint": {"mode": "explicit"},
            },
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {
                "type": "file",
                "file": {"file_data": "data:application/pdf;base64,JVBERg==", "filename": "a.pdf"},
            },
            {"type": "file", "file": {"file_id": "file-abc"}},
            {"type": "input_file", "file_id": "file-xyz"},
            {"type": "video_url", "video_url": {"url": "https://example.test/v.mp4"}},
            {"type": "audio_url", "audio_url": {"url": "data:audio/mp3;base64,SUQz"}},
            {"type": "file_url", "file_url": {"url": "https://example.test/doc.pdf"}},
        ],
    },
    {
        "role": "assistant",
        "name": "bot",
        "content": [{"type": "text", "text": "Checking."}, {"type": "refusal", "refusal": "No."}],
        "refusal": None,
        "audio": {"id": "audio_1"},
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
            {"id": "call_2", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "12C"}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "1"},
    {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
    {"role": "function", "name": "f", "content": None},
    {"role": "function", "name": "f", "content": "done"},
]

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

EVERY_FIELD: dict[str, Any] = {
    "model": "vlm-agent-1",
    "messages": MESSAGES,
    "audio": {"format": "pcm16", "voice": {"id": "voice_1"}},
    "frequency_penalty": -2.0,
    "function_call": {"name": "f"},
    "functions": [{"name": "f", "description": "legacy", "parameters": SCHEMA}],
    "logit_bias": {"50256": -100, "42": 100},
    "logprobs": True,
    "max_completion_tokens": 512,
    "max_tokens": 256,
    "metadata": {"team": "vision"},
    "modalities": ["text", "audio"],
    "moderation": {
        "model": "omni-moderation-latest",
        "policy": {"input": {"mode": "score"}, "output": {"mode": "block"}},
    },
    "n": 2,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": [{"type": "text", "text": "draft"}]},
    "presence_penalty": 2.0,
    "prompt_cache_key": "cache-1",
    "prompt_cache_options": {"mode": "explicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "xhigh",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "city", "description": "a city", "schema": SCHEMA, "strict": True},
    },
    "safety_identifier": "user-hash",
    "seed": 7,
    "service_tier": "flex",
    "stop": ["\n\n", "END"],
    "store": True,
    "stream": False,
    "stream_options": {"include_usage": False},
    "temperature": 0.2,
    "tool_choice": {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
    },
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather now",
                "parameters": SCHEMA,
                "strict": True,
            },
        },
        {
            "type": "custom",
            "custom": {
                "name": "sql",
                "description": "Run SQL",
                "format": {
                    "type": "grammar",
                    "grammar": {"definition": "start: /SELECT .*/", "syntax": "lark"},
                },
            },
        },
        {"type": "custom", "custom": {"name": "free", "format": {"type": "text"}}},
    ],
    "top_logprobs": 20,
    "top_p": 0.9,
    "user": "ana",
    "verbosity": "low",
    "web_search_options": {
        "search_context_size": "high",
        "user_location": {
            "type": "approximate",
            "approximate": {
                "city": "Oslo",
                "country": "NO",
                "region": "Oslo",
                "timezone": "Europe/Oslo",
            },
        },
    },
}

EXTRA_BODY = {
    "session_id": "sess-1",
    "vlmrun": {
        "domain": "document.invoice",
        "metadata": {"environment": "staging", "allow_logging": False, "extra": {"k": [1, 2]}},
    },
    "x_trace": {"id": "t-1", "sampled": True},
}


class Capture:
    """A loopback Chat Completions server that keeps every request body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.bodies.append(body)
        decoded = decode_request(body)
        if decoded.streaming:
            stream = ChunkStream(decoded.model, session_id=decoded.session_id or UNSET)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for chunk in (stream.text("Hi"), stream.finish(), stream.usage(Usage.of(3, 1))):
                await response.write(sse_frame(chunk))
            await response.write(SSE_DONE)
            await response.write_eof()
            return response
        answer = ChatResponse(
            "chatcmpl-1",
            1,
            decoded.model,
            [Choice(0, ResponseMessage(content="Hi"))],
            Usage.of(3, 1),
            session_id=decoded.session_id or UNSET,
        )
        return web.Response(body=encode_response(answer), content_type="application/json")


@pytest.fixture
async def capture() -> AsyncIterator[tuple[Capture, openai.AsyncOpenAI]]:
    recorder = Capture()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", recorder.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0
    )
    try:
        yield recorder, client
    finally:
        await client.close()
        await server.close()


async def _sent_by_sdk(capture: tuple[Capture, openai.AsyncOpenAI], **kwargs: Any) -> bytes:
    recorder, client = capture
    await client.chat.completions.create(**kwargs)
    return recorder.bodies[-1]


async def test_the_sdk_request_with_every_field_decodes(
    capture: tuple[Capture, openai.AsyncOpenAI],
) -> None:
    body = await _sent_by_sdk(capture, **EVERY_FIELD, extra_body=EXTRA_BODY)
    sent = json.loads(body)
    every = set(typing.get_type_hints(sdk.CompletionCreateParamsBase)) | {"stream"}
    assert every <= set(sent), "the test must send every field the SDK knows"

    request = translator.decode_request(body)

    for field in every | {"session_id", "vlmrun"}:
        assert getattr(request, field) is not UNSET, field
    assert dict(unknown_fields(request)).keys() == {"x_trace"}
    assert json.loads(bytes(unknown_fields(request)["x_trace"])) == EXTRA_BODY["x_trace"]

    assert request.model == "vlm-agent-1"
    assert request.temperature == 0.2
    assert request.top_p == 0.9
    assert request.n == 2
    assert request.logit_bias == {"50256": -100, "42": 100}
    assert request.stop == ["\n\n", "END"]
    assert request.audio is not UNSET
    assert request.audio is not None
    assert request.audio.voice == VoiceID("voice_1")
    assert request.function_call == FunctionCallOption("f")
    assert isinstance(request.response_format, JSONSchemaFormat)
    assert request.response_format.json_schema.schema is not UNSET
    assert json.loads(bytes(request.response_format.json_schema.schema)) == SCHEMA
    assert isinstance(request.tool_choice, AllowedToolsChoice)
    assert request.tool_choice.allowed_tools.mode == "required"
    assert request.tools is not UNSET
    assert [type(t) for t in request.tools] == [FunctionTool, CustomTool, CustomTool]
    custom = request.tools[1]
    assert isinstance(custom, CustomTool)
    assert isinstance(custom.custom.format, CustomFormatGrammar)
    assert custom.custom.format.grammar.syntax == "lark"
    assert request.moderation is not UNSET
    assert request.moderation is not None
    assert request.moderation.policy is not UNSET
    assert request.moderation.policy is not None
    assert request.moderation.policy.output is not UNSET
    assert request.web_search_options is not UNSET
    assert request.web_search_options.user_location is not UNSET
    assert request.web_search_options.user_location is not None
    assert request.web_search_options.user_location.approximate.timezone == "Europe/Oslo"
    assert request.prompt_cache_options is not UNSET
    assert request.prompt_cache_options.mode == "explicit"
    assert request.session_id == "sess-1"
    assert request.session == "sess-1"
    assert request.vlmrun is not UNSET
    assert request.vlmrun.domain == "document.invoice"
    assert request.vlmrun.metadata == RequestMetadata(
        environment="staging", allow_logging=False, extra={"k": [1, 2]}
    )


async def test_the_sdk_request_decodes_every_role_and_part(
    capture: tuple[Capture, openai.AsyncOpenAI],
) -> None:
    body = await _sent_by_sdk(capture, model="m", messages=MESSAGES)
    request = decode_request(body)

    assert [type(m) for m in request.messages] == [
        DeveloperMessage,
        SystemMessage,
        UserMessage,
        AssistantMessage,
        ToolMessage,
        ToolMessage,
        AssistantMessage,
        FunctionMessage,
        FunctionMessage,
    ]
    developer, system, user, assistant, tool, tool_text, legacy, fn_none, fn = request.messages
    assert isinstance(developer, DeveloperMessage)
    assert isinstance(developer.content, list)
    assert developer.content[0].prompt_cache_breakpoint is not UNSET
    assert developer.content[0].prompt_cache_breakpoint.ttl == "12h"
    assert isinstance(system, SystemMessage)
    assert system.content == "You are a helpful assistant."
    assert isinstance(user, UserMessage)
    assert isinstance(user.content, list)
    assert [type(p) for p in user.content] == [
        TextPart,
        ImagePart,
        InputAudioPart,
        FilePart,
        FilePart,
        InputFilePart,
        VideoURLPart,
        AudioURLPart,
        FileURLPart,
    ]
    image = user.content[1]
    assert isinstance(image, ImagePart)
    assert image.image_url.url == PNG, "a data URI is kept exactly as sent"
    assert image.image_url.detail == "original"
    assert isinstance(user.content[5], InputFilePart)
    assert user.content[5].file_id == "file-xyz"
    assert isinstance(user.content[6], VideoURLPart)
    assert user.content[6].video_url.url == "https://example.test/v.mp4"
    assert isinstance(assistant, AssistantMessage)
    assert isinstance(assistant.content, list)
    assert [type(p) for p in assistant.content] == [TextPart, RefusalPart]
    assert assistant.refusal is None
    assert assistant.tool_calls is not UNSET
    assert [type(c) for c in assistant.tool_calls] == [FunctionToolCall, CustomToolCall]
    assert isinstance(tool, ToolMessage)
    assert tool.tool_call_id == "call_1"
    assert isinstance(tool_text, ToolMessage)
    assert tool_text.content == "1"
    assert isinstance(legacy, AssistantMessage)
    assert legacy.content is None
    assert legacy.function_call is not UNSET
    assert legacy.function_call is not None
    assert legacy.function_call.name == "f"
    assert isinstance(fn_none, FunctionMessage)
    assert fn_none.content is None
    assert isinstance(fn, FunctionMessage)
    assert fn.content == "done"


async def test_a_streaming_sdk_request_decodes_and_the_sdk_reads_the_stream(
    capture: tuple[Capture, openai.AsyncOpenAI],
) -> None:
    recorder, client = capture
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False},
        extra_body={"session_id": "s-9"},
    )
    chunks = [chunk async for chunk in stream]
    request = decode_request(recorder.bodies[-1])
    assert request.streaming
    assert request.stream_options is not UNSET
    assert request.stream_options is not None
    assert request.stream_options.include_usage is True
    assert request.stream_options.include_obfuscation is False
    assert [c.choices[0].delta.content for c in chunks[:1]] == ["Hi"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert {c.id for c in chunks} == {chunks[0].id}


async def test_the_sdk_tool_loop_sends_back_an_answer_that_decodes(
    capture: tuple[Capture, openai.AsyncOpenAI],
) -> None:
    call = FunctionToolCall("call_1", FunctionCall("get_weather", '{"city":"Oslo"}'))
    answer = ChatResponse(
        "chatcmpl-1",
        1,
        "m",
        [Choice(0, ResponseMessage(tool_calls=[call]), "tool_calls")],
        Usage.of(3, 1),
    )
    completion = ChatCompletion.model_validate_json(encode_response(answer))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}
    body = await _sent_by_sdk(
        capture,
        model="m",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            completion.choices[0].message,  # the SDK's own object, as its docs show
            {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
        ],
        tools=[tool],
        tool_choice="auto",
    )
    request = decode_request(body)
    assistant = request.messages[1]
    assert isinstance(assistant, AssistantMessage)
    assert assistant.tool_calls == [call]
    assert isinstance(request.messages[2], ToolMessage)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", "none"),
        ("auto", "auto"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "f"}}, NamedFunctionChoice),
        ({"type": "custom", "custom": {"name": "sql"}}, NamedCustomChoice),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
            AllowedToolsChoice,
        ),
    ],
)
def test_every_tool_choice_form(value: object, expected: object) -> None:
    tools = [
        {"type": "function", "function": {"name": "f"}},
        {"type": "custom", "custom": {"name": "sql"}},
    ]
    request = decode_request(_body(tool_choice=value, tools=tools))
    if isinstance(expected, str):
        assert request.tool_choice == expected
    else:
        assert type(request.tool_choice) is expected
    assert json.loads(encode_request(request))["tool_choice"] == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "text"}, TextFormat),
        ({"type": "json_object"}, JSONObjectFormat),
        ({"type": "json_schema", "json_schema": {"name": "n"}}, JSONSchemaFormat),
        (
            {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA, "strict": None}},
            JSONSchemaFormat,
        ),
    ],
)
def test_every_response_format_form(value: object, expected: type) -> None:
    request = decode_request(_body(response_format=value))
    assert type(request.response_format) is expected
    assert json.loads(encode_request(request))["response_format"] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("function_call", "none"),
        ("function_call", "auto"),
        ("stop", "END"),
        ("stop", None),
        ("audio", {"format": "mp3", "voice": "alloy"}),
        ("prediction", {"type": "content", "content": "draft"}),
        ("web_search_options", {}),
        ("web_search_options", {"user_location": None}),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("moderation", None),
        ("stream_options", None),
        ("prompt_cache_options", {}),
        ("modalities", ["text"]),
        ("temperature", 0),
        ("temperature", 2),
        ("top_p", 0),
        ("frequency_penalty", 2),
        ("presence_penalty", -2),
        ("logit_bias", {"1": 100, "2": -100}),
        ("n", 1),
        ("metadata", {str(i): "v" * 512 for i in range(16)}),
        ("seed", -(2**63)),
        ("session_id", None),
        ("vlmrun", {}),
        ("vlmrun", {"domain": "video.transcription"}),
    ],
)
def test_field_forms_and_limits_are_accepted_and_kept(field: str, value: object) -> None:
    request = decode_request(_body(**{field: value}))
    assert getattr(request, field) is not UNSET
    assert json.loads(encode_request(request))[field] == value


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_file", "file_id": "file-1"},
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}},
        {"type": "audio_url", "audio_url": {"url": "https://example.test/a.wav"}},
        {"type": "file_url", "file_url": {"url": "https://example.test/a.pdf"}},
    ],
)
def test_vlm_parts_decode_and_reencode(part: dict[str, Any]) -> None:
    body = _body(messages=[{"role": "user", "content": [part]}])
    request = decode_request(body)
    assert json.loads(encode_request(request))["messages"][0]["content"] == [part]


def test_vlmrun_metadata_gets_the_documented_defaults() -> None:
    request = decode_request(_body(vlmrun={"metadata": {}}))
    assert request.vlmrun is not UNSET
    assert request.vlmrun.metadata == RequestMetadata(
        environment="prod",
        session_id=None,
        allow_training=True,
        allow_retention=True,
        allow_logging=True,
        extra=None,
    )
    assert request.vlmrun.domain is UNSET
    assert request.session is None


def test_unknown_top_level_fields_are_kept_as_raw_json_and_reencoded() -> None:
    body = (
        b'{"model":"m","messages":[{"role":"user","content":"x"}],'
        b'"guided_json":{"type": "object"},"top_k":40,"x":null}'
    )
    request = decode_request(body)
    assert {k: bytes(v) for k, v in unknown_fields(request).items()} == {
        "guided_json": b'{"type": "object"}',
        "top_k": b"40",
        "x": b"null",
    }
    assert json.loads(encode_request(request)) == json.loads(body)


def test_a_request_without_unknown_fields_keeps_none() -> None:
    request = decode_request(_body())
    assert dict(unknown_fields(request)) == {}
    assert json.loads(encode_request(request)) == json.loads(_body())


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_any_bytes_like(kind: type) -> None:
    request = decode_request(kind(_body(top_k=1)))
    assert isinstance(request, ChatRequest)
    assert request.model == "m"


def test_schemas_are_kept_byte_for_byte() -> None:
    raw = b'{"type":"object","properties":{"a":{"type":"number","minimum":1e3}},"x":[]}'
    body = (
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",'
        b'"function":{"name":"f","parameters":' + raw + b"}}]}"
    )
    request = decode_request(body)
    assert request.tools is not UNSET
    tool = request.tools[0]
    assert isinstance(tool, FunctionTool)
    assert tool.function.parameters is not UNSET
    assert bytes(tool.function.parameters) == raw
    assert raw in encode_request(request)


def _body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return msgspec.json.encode(base)
