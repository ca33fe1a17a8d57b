"""What decoding refuses beyond types: unknown nested keys, broken UTF-8, cross-field rules.

Every refusal is a 400 ``invalid_request_error`` whose ``param`` names the
place to fix; everything legitimate next to it still decodes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from translator._model import (
    AssistantMessage,
    ChatResponse,
    CustomToolCall,
    FunctionCall,
    FunctionTool,
    FunctionToolCall,
    JSONSchemaFormat,
    unknown_fields,
)
from translator._openai import decode_request, encode_request
from translator.errors import InvalidRequestError

USER = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
ASKS = {"role": "assistant", "content": None, "tool_calls": [CALL]}
ANSWER = {"role": "tool", "tool_call_id": "call_1", "content": "42"}
F = {"type": "function", "function": {"name": "f"}}
SQL = {"type": "custom", "custom": {"name": "sql"}}


def _body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "m", "messages": [USER]}
    base.update(fields)
    return json.dumps(base).encode()


def _refused(body: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(body)
    error = caught.value
    assert error.status == 400
    assert error.to_openai()["error"]["type"] == "invalid_request_error"
    assert error.code is not None
    return error


# -- unknown keys below the top level -----------------------------------------------


def _image(**extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": "https://example.test/a.png", **extra}}


UNKNOWN: dict[str, tuple[bytes, str]] = {
    "message": (_body(messages=[{**USER, "foo": 1}]), "messages[0].foo"),
    "part": (
        _body(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "foo": 1}]}]),
        "messages[0].content[0].foo",
    ),
    "image url": (
        _body(messages=[USER, {"role": "user", "content": [_image(foo=None)]}]),
        "messages[1].content[0].image_url.foo",
    ),
    "tool call": (
        _body(messages=[USER, {**ASKS, "tool_calls": [{**CALL, "index": 0}]}, ANSWER]),
        "messages[1].tool_calls[0].index",
    ),
    "tool call function": (
        _body(
            messages=[
                USER,
                {
                    **ASKS,
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "", "x": 1}}],
                },
                ANSWER,
            ]
        ),
        "messages[1].tool_calls[0].function.x",
    ),
    "tool definition": (
        _body(tools=[{"type": "function", "function": {"name": "f", "x": 1}}]),
        "tools[0].function.x",
    ),
    "tool": (_body(tools=[{**F, "strict": True}]), "tools[0].strict"),
    "vlmrun": (_body(vlmrun={"foo": 1}), "vlmrun.foo"),
    "vlmrun metadata": (_body(vlmrun={"metadata": {"bar": True}}), "vlmrun.metadata.bar"),
    "json schema": (
        _body(response_format={"type": "json_schema", "json_schema": {"name": "n", "foo": 1}}),
        "response_format.json_schema.foo",
    ),
    "stream options": (_body(stream_options={"include_usage": True, "x": 1}), "stream_options.x"),
    "tool choice": (
        _body(tools=[F], tool_choice={**F, "function": {"name": "f", "x": 1}}),
        "tool_choice.function.x",
    ),
    "user location": (
        _body(
            web_search_options={"user_location": {"type": "approximate", "approximate": {"x": 1}}}
        ),
        "web_search_options.user_location.approximate.x",
    ),
    "odd key": (
        _body(messages=[{**USER, "a b": 1}]),
        'messages[0]["a b"]',
    ),
    "after an unknown top-level field": (
        _body(top_k=1, messages=[{**USER, "foo": 1}]),
        "messages[0].foo",
    ),
}


@pytest.mark.parametrize(("body", "param"), UNKNOWN.values(), ids=UNKNOWN)
def test_an_unknown_nested_key_is_refused_at_its_path(body: bytes, param: str) -> None:
    error = _refused(body)
    assert error.param == param
    assert error.code == "unknown_parameter"
    assert error.message == f"Unrecognized request argument supplied: {param}"


def test_unknown_top_level_fields_are_still_kept_for_the_matrix() -> None:
    request = decode_request(_body(top_k=40, guided_json={"type": "object"}))
    assert {k: json.loads(bytes(v)) for k, v in unknown_fields(request).items()} == {
        "top_k": 40,
        "guided_json": {"type": "object"},
    }


def test_free_form_places_still_take_any_keys() -> None:
    schema = {"type": "object", "x-vendor": {"anything": [1, {"goes": None}]}}
    extra = {"trace": {"id": "t", "tags": ["a"]}, "n": 1.5, "deep": {"a": {"b": {"c": []}}}}
    request = decode_request(
        _body(
            vlmrun={"metadata": {"extra": extra}},
            tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
            tool_choice={
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{**F, "x-any": 1}]},
            },
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
            metadata={"free-key": "v"},
            logit_bias={"50256": 1},
        )
    )
    assert request.vlmrun is not UNSET
    assert request.vlmrun.metadata is not UNSET
    assert request.vlmrun.metadata.extra == extra
    sent = json.loads(encode_request(request))
    assert sent["tools"][0]["function"]["parameters"] == schema
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["tool_choice"]["allowed_tools"]["tools"] == [{**F, "x-any": 1}]


REPLY = (
    b'{"id":"c","object":"chat.completion","created":1,"model":"m","x_upstream":1,'
    b'"choices":[{"index":0,"finish_reason":"tool_calls","x":1,"message":{'
    b'"role":"assistant","content":null,"annotations":[],"reasoning_content":"hm",'
    b'"tool_calls":[{"id":"call_1","index":0,"type":"function","extra_content":{},'
    b'"function":{"name":"f","arguments":"{}","x":1}},'
    b'{"id":"call_2","type":"custom","custom":{"name":"sql","input":"SELECT 1","x":1}}],'
    b'"function_call":{"name":"g","arguments":"{}","x":1}}}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"x":1}}'
)


def test_upstream_replies_with_keys_of_their_own_still_decode() -> None:
    response = msgspec.json.decode(REPLY, type=ChatResponse)
    message = response.choices[0].message
    assert message.tool_calls is not UNSET
    assert [type(c) for c in message.tool_calls] == [FunctionToolCall, CustomToolCall]
    assert type(message.tool_calls[0].function) is FunctionCall  # type: ignore[union-attr]
    assert type(message.function_call) is FunctionCall
    assert msgspec.json.decode(REPLY, type=ChatResponse) == response


def test_a_replys_tool_calls_equal_the_same_calls_sent_back() -> None:
    # Sessions recognise an answer the client echoes by comparing the calls.
    response = msgspec.json.decode(REPLY, type=ChatResponse)
    echoed = decode_request(_body(messages=[USER, ASKS, ANSWER]))
    assistant = echoed.messages[1]
    assert isinstance(assistant, AssistantMessage)
    assert assistant.tool_calls is not UNSET
    assert response.choices[0].message.tool_calls[:1] == assistant.tool_calls  # type: ignore[index]


# -- UTF-8 inside raw JSON --------------------------------------------------------------

SCHEMA_AT = b'{"type":"object","description":"\xff"}'
BROKEN: dict[str, tuple[bytes, str]] = {
    "unknown top-level field": (_body()[:-1] + b',"top_k":"\xff"}', "top_k"),
    "odd unknown top-level key": (_body()[:-1] + b',"a b":["\xfe"]}', '["a b"]'),
    "function parameters": (
        _body()[:-1]
        + b',"tools":[{"type":"function","function":{"name":"f","parameters":'
        + SCHEMA_AT
        + b"}}]}",
        "tools[0].function.parameters",
    ),
    "legacy function parameters": (
        _body()[:-1] + b',"functions":[{"name":"f","parameters":' + SCHEMA_AT + b"}]}",
        "functions[0].parameters",
    ),
    "json schema": (
        _body()[:-1]
        + b',"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":'
        + SCHEMA_AT
        + b"}}}",
        "response_format.json_schema.schema",
    ),
    "allowed tools": (
        _body(tools=[F])[:-1]
        + b',"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto",'
        + b'"tools":[{"type":"function","function":{"name":"\xc3"}}]}}}',
        "tool_choice.allowed_tools.tools",
    ),
}


@pytest.mark.parametrize(("body", "param"), BROKEN.values(), ids=BROKEN)
def test_text_that_is_not_utf8_is_refused_even_in_raw_json(body: bytes, param: str) -> None:
    error = _refused(body)
    assert error.code == "invalid_json"
    assert error.param == param
    assert "not valid UTF-8" in error.message
    assert param in error.message


def test_utf8_beyond_ascii_in_raw_json_is_kept_byte_for_byte() -> None:
    schema = '{"type":"object","description":"Größe ≥ 1 🌍"}'.encode()
    body = (
        _body()[:-1]
        + b',"x_note":"caf\xc3\xa9","response_format":{"type":"json_schema",'
        + b'"json_schema":{"name":"n","schema":'
        + schema
        + b"}}}"
    )
    request = decode_request(body)
    assert isinstance(request.response_format, JSONSchemaFormat)
    assert bytes(request.response_format.json_schema.schema) == schema  # type: ignore[arg-type]
    assert bytes(unknown_fields(request)["x_note"]) == '"café"'.encode()


# -- top_logprobs ------------------------------------------------------------------------


@pytest.mark.parametrize("logprobs", [UNSET, None, False])
def test_top_logprobs_needs_logprobs_true(logprobs: object) -> None:
    fields: dict[str, Any] = {"top_logprobs": 3}
    if logprobs is not UNSET:
        fields["logprobs"] = logprobs
    error = _refused(_body(**fields))
    assert error.param == "top_logprobs"
    assert error.code == "invalid_value"
    assert "'logprobs' is true" in error.message


@pytest.mark.parametrize("top", [0, 20])
def test_top_logprobs_with_logprobs_true_is_kept(top: int) -> None:
    request = decode_request(_body(logprobs=True, top_logprobs=top))
    assert request.top_logprobs == top
    assert json.loads(encode_request(request))["top_logprobs"] == top


def test_top_logprobs_null_asks_for_nothing() -> None:
    assert decode_request(_body(top_logprobs=None)).top_logprobs is None


# -- tool results answer earlier tool calls -------------------------------------------


def test_tool_results_answering_earlier_calls_decode() -> None:
    second = {**CALL, "id": "call_2"}
    custom = {"id": "call_3", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
    messages = [
        USER,
        {**ASKS, "tool_calls": [CALL, second]},
        {**ANSWER, "tool_call_id": "call_2"},
        ANSWER,
        {"role": "assistant", "content": "and one more", "tool_calls": [custom]},
        {**ANSWER, "tool_call_id": "call_3"},
        {"role": "user", "content": "and the first again?"},
        ANSWER,
    ]
    assert len(decode_request(_body(messages=messages)).messages) == len(messages)


@pytest.mark.parametrize(
    ("messages", "index", "fragment"),
    [
        ([USER, ANSWER], 1, "no earlier assistant message has 'tool_calls'"),
        ([ANSWER, USER], 0, "no earlier assistant message has 'tool_calls'"),
        ([USER, ASKS, {**ANSWER, "tool_call_id": "call_9"}], 2, "tool calls are 'call_1'"),
        ([USER, ANSWER, ASKS], 1, "no earlier assistant message"),
    ],
)
def test_a_tool_result_answering_no_earlier_call_is_refused(
    messages: list[dict[str, Any]], index: int, fragment: str
) -> None:
    error = _refused(_body(messages=messages))
    assert error.param == f"messages[{index}].tool_call_id"
    assert error.code == "invalid_value"
    assert "messages with role 'tool' must be a response" in error.message
    assert fragment in error.message


def test_many_earlier_calls_are_counted_not_listed() -> None:
    calls = [{**CALL, "id": f"call_{i}"} for i in range(10)]
    messages = [USER, {**ASKS, "tool_calls": calls}, {**ANSWER, "tool_call_id": "nope"}]
    error = _refused(_body(messages=messages))
    assert "none of the 10 earlier tool calls" in error.message


@pytest.mark.parametrize(
    "session", [{"session_id": "s"}, {"vlmrun": {"metadata": {"session_id": "s"}}}]
)
def test_in_a_session_the_call_may_be_in_the_stored_history(session: dict[str, Any]) -> None:
    request = decode_request(_body(messages=[ANSWER], **session))
    assert request.session == "s"


def test_a_null_session_id_is_no_session() -> None:
    error = _refused(_body(messages=[ANSWER], session_id=None))
    assert error.param == "messages[0].tool_call_id"


# -- an assistant message says something ----------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant"},
        {"role": "assistant", "content": None},
        {"role": "assistant", "content": []},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "assistant", "content": None, "refusal": None, "function_call": None},
        {"role": "assistant", "audio": None, "name": "bot"},
    ],
)
def test_an_assistant_message_saying_nothing_is_refused(message: dict[str, Any]) -> None:
    error = _refused(_body(messages=[USER, message, USER]))
    assert error.param == "messages[1].content"
    assert error.code == "missing_required_parameter"
    assert "unless it has 'tool_calls', 'function_call', 'refusal' or 'audio'" in error.message


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
        {"role": "assistant", "refusal": "I can't."},
        {"role": "assistant", "content": None, "refusal": ""},
        {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "assistant", "audio": {"id": "audio_1"}},
        ASKS,
    ],
)
def test_an_assistant_message_with_anything_to_say_decodes(message: dict[str, Any]) -> None:
    messages = [USER, message, ANSWER] if message is ASKS else [USER, message]
    assert isinstance(decode_request(_body(messages=messages)).messages[1], AssistantMessage)


# -- tool_choice and tools -------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "tools"),
    [
        ("auto", UNSET),
        ("required", UNSET),
        (F, UNSET),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [F]}}, UNSET),
        ("auto", []),
    ],
)
def test_tool_choice_without_tools_is_refused(choice: object, tools: object) -> None:
    fields: dict[str, Any] = {"tool_choice": choice}
    if tools is not UNSET:
        fields["tools"] = tools
    error = _refused(_body(**fields))
    assert error.param == "tool_choice"
    assert error.code == "invalid_value"
    assert "only allowed when 'tools' are specified" in error.message


def test_tool_choice_none_needs_no_tools() -> None:
    assert decode_request(_body(tool_choice="none")).tool_choice == "none"


@pytest.mark.parametrize(
    ("choice", "fragment"),
    [
        ({"type": "function", "function": {"name": "g"}}, "no function named 'g'"),
        ({"type": "function", "function": {"name": "sql"}}, "functions in 'tools' are 'f'"),
        ({"type": "custom", "custom": {"name": "f"}}, "custom tools in 'tools' are 'sql'"),
    ],
)
def test_tool_choice_naming_a_tool_not_given_is_refused(
    choice: dict[str, Any], fragment: str
) -> None:
    error = _refused(_body(tools=[F, SQL], tool_choice=choice))
    assert error.param == "tool_choice"
    assert error.code == "invalid_value"
    assert fragment in error.message


def test_tool_choice_naming_a_kind_with_no_tools_of_it_says_so() -> None:
    error = _refused(_body(tools=[F], tool_choice={"type": "custom", "custom": {"name": "sql"}}))
    assert (
        error.message
        == "Invalid value for 'tool_choice': no custom tool named 'sql' is in 'tools'."
    )


@pytest.mark.parametrize(
    "choice",
    ["auto", "required", F, {"type": "custom", "custom": {"name": "sql"}}],
)
def test_tool_choice_among_the_tools_decodes(choice: object) -> None:
    request = decode_request(_body(tools=[F, SQL], tool_choice=choice))
    assert request.tools is not UNSET
    assert isinstance(request.tools[0], FunctionTool)
    assert json.loads(encode_request(request))["tool_choice"] == choice
