"""Bad requests become 400 ``invalid_request_error`` bodies naming the exact place."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from translator import InvalidRequestError, TranslatorError, decode_request
from translator._openai import decode_error

USER = {"role": "user", "content": "hi"}


def _body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "m", "messages": [USER]}
    base.update(fields)
    return json.dumps(base).encode()


def _user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


TEXT = {"type": "text", "text": "look"}

# (body, param, code, fragments the message must contain)
CASES: dict[str, tuple[bytes, str | None, str | None, list[str]]] = {
    # invalid JSON
    "truncated": (
        b'{"model": "m", ',
        None,
        "invalid_json",
        ["could not parse the JSON body", "not valid JSON: it ends before the value is complete"],
    ),
    "empty body": (b"", None, "invalid_json", ["could not parse the JSON body", "body is empty"]),
    "blank body": (b" \r\n", None, "invalid_json", ["body is empty"]),
    "not json": (b' {"model": nope}', None, "invalid_json", ["unexpected text at character 11"]),
    "trailing garbage": (
        _body() + b"}",
        None,
        "invalid_json",
        [f"more text follows the value, at character {len(_body())}"],
    ),
    "not utf-8": (b'{"model": "\xff"}', None, "invalid_json", ["not valid UTF-8 at byte 11"]),
    "not utf-8 after unknown": (
        b'{"top_k": 1, "model": "\xff"}',
        None,
        "invalid_json",
        ["could not parse"],
    ),
    "not utf-8 key": (b'{"\xff": 1, "model": "m"}', None, "invalid_json", ["could not parse"]),
    "nested too deeply": (
        _body()[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        None,
        "invalid_json",
        ["nested too deeply"],
    ),
    "schema nested too deeply": (
        _body()[:-1]
        + b',"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"a":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}}}",
        None,
        "invalid_json",
        ["nested too deeply"],
    ),
    "bad value before deep nesting": (
        _body(temperature=9)[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "temperature",
        "decimal_above_max_value",
        ["<= 2.0"],
    ),
    # body not an object
    "array body": (b"[]", None, "invalid_type", ["must be a JSON object", "got an array"]),
    "string body": (b'"hi"', None, "invalid_type", ["must be a JSON object", "got a string"]),
    "null body": (b"null", None, "invalid_type", ["must be a JSON object", "got null"]),
    # wrong types
    "model int": (
        _body(model=5),
        "model",
        "invalid_type",
        ["Invalid type for 'model'", "expected a string", "got an integer"],
    ),
    "messages string": (
        _body(messages="hi"),
        "messages",
        "invalid_type",
        ["expected an array", "got a string"],
    ),
    "content int": (
        _body(messages=[USER, USER, {"role": "user", "content": 3}]),
        "messages[2].content",
        "invalid_type",
        ["expected one of a string or an array", "got an integer"],
    ),
    "image url int": (
        _body(messages=[USER, USER, _user(TEXT, {"type": "image_url", "image_url": {"url": 1}})]),
        "messages[2].content[1].image_url.url",
        "invalid_type",
        ["'messages[2].content[1].image_url.url'", "expected a string"],
    ),
    "temperature string": (
        _body(temperature="hot"),
        "temperature",
        "invalid_type",
        ["expected one of a number or null", "got a string"],
    ),
    "stream string": (_body(stream="yes"), "stream", "invalid_type", ["a boolean or null"]),
    "n float": (_body(n=1.5), "n", "invalid_type", ["an integer or null", "got a number"]),
    "allow_training string": (
        _body(vlmrun={"metadata": {"allow_training": "no"}}),
        "vlmrun.metadata.allow_training",
        "invalid_type",
        ["expected a boolean"],
    ),
    "tool arguments object": (
        _body(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
        "invalid_type",
        ["expected a string", "got an object"],
    ),
    "parameters as a string": (
        _body(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
        "tools[0].function.parameters",
        "invalid_type",
        ["expected an object, but got a string instead"],
    ),
    "legacy parameters as an array": (
        _body(functions=[{"name": "f", "parameters": []}]),
        "functions[0].parameters",
        "invalid_type",
        ["expected an object, but got an array instead"],
    ),
    "schema as a number": (
        _body(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": 1}}),
        "response_format.json_schema.schema",
        "invalid_type",
        ["expected an object, but got a number instead"],
    ),
    "schema as null": (
        _body(
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": None}}
        ),
        "response_format.json_schema.schema",
        "invalid_type",
        ["got null"],
    ),
    "role not a string": (
        _body(messages=[{"role": 1, "content": "x"}]),
        "messages[0].role",
        "invalid_type",
        ["expected a string, but got an integer instead.", "'system', 'developer'"],
    ),
    "part type not a string": (
        _body(messages=[_user({"type": None})]),
        "messages[0].content[0].type",
        "invalid_type",
        ["expected a string, but got null instead.", "'input_file'"],
    ),
    # missing required fields
    "no model": (
        json.dumps({"messages": [USER]}).encode(),
        "model",
        "missing_required_parameter",
        ["Missing required parameter: 'model'."],
    ),
    "no messages": (
        json.dumps({"model": "m"}).encode(),
        "messages",
        "missing_required_parameter",
        ["Missing required parameter: 'messages'."],
    ),
    "no image url": (
        _body(messages=[USER, USER, _user(TEXT, {"type": "image_url", "image_url": {}})]),
        "messages[2].content[1].image_url.url",
        "missing_required_parameter",
        ["Missing required parameter: 'messages[2].content[1].image_url.url'."],
    ),
    "no role": (
        _body(messages=[{"content": "x"}]),
        "messages[0].role",
        "missing_required_parameter",
        ["'messages[0].role'", "'system', 'developer', 'user', 'assistant', 'tool', or 'function'"],
    ),
    "no part type": (
        _body(messages=[_user({"text": "x"})]),
        "messages[0].content[0].type",
        "missing_required_parameter",
        ["'messages[0].content[0].type'", "'text', 'image_url'"],
    ),
    "no tool_call_id": (
        _body(messages=[{"role": "tool", "content": "x"}]),
        "messages[0].tool_call_id",
        "missing_required_parameter",
        [],
    ),
    "no input_file id": (
        _body(messages=[_user({"type": "input_file"})]),
        "messages[0].content[0].file_id",
        "missing_required_parameter",
        [],
    ),
    "no schema name": (
        _body(response_format={"type": "json_schema", "json_schema": {}}),
        "response_format.json_schema.name",
        "missing_required_parameter",
        [],
    ),
    # empty messages
    "empty messages": (
        _body(messages=[]),
        "messages",
        "empty_array",
        ["Invalid 'messages': empty array", "minimum length 1"],
    ),
    # out-of-range values
    "temperature high": (
        _body(temperature=2.5),
        "temperature",
        "decimal_above_max_value",
        ["Expected a value <= 2.0, but got 2.5 instead."],
    ),
    "temperature low": (
        _body(temperature=-0.1),
        "temperature",
        "decimal_below_min_value",
        [">= 0.0", "got -0.1"],
    ),
    "top_p high": (_body(top_p=1.01), "top_p", "decimal_above_max_value", ["<= 1.0"]),
    "n zero": (_body(n=0), "n", "integer_below_min_value", [">= 1, but got 0"]),
    "frequency_penalty": (
        _body(frequency_penalty=-2.01),
        "frequency_penalty",
        "decimal_below_min_value",
        [">= -2.0"],
    ),
    "presence_penalty": (
        _body(presence_penalty=3),
        "presence_penalty",
        "decimal_above_max_value",
        ["<= 2.0, but got 3"],
    ),
    "top_logprobs": (_body(top_logprobs=21), "top_logprobs", "integer_above_max_value", ["<= 20"]),
    "logit_bias value": (
        _body(logit_bias={"50256": 101}),
        "logit_bias.50256",
        "integer_above_max_value",
        ["<= 100, but got 101"],
    ),
    "logit_bias not a token id": (
        _body(logit_bias={"1": 0, "hello": 1}),
        "logit_bias",
        "invalid_value",
        ["Invalid key in 'logit_bias'", "'hello'", "^[0-9]+$"],
    ),
    "temperature overflows": (
        _body()[:-1] + b',"temperature":1e400}',
        "temperature",
        "invalid_value",
        ["number out of range", "64-bit float"],
    ),
    "max_tokens zero": (_body(max_tokens=0), "max_tokens", "integer_below_min_value", [">= 1"]),
    "seed too big": (_body(seed=2**64), "seed", "integer_above_max_value", []),
    "too many stops": (
        _body(stop=["a", "b", "c", "d", "e"]),
        "stop",
        "array_above_max_length",
        ["array too long", "maximum length 4, but got 5"],
    ),
    "metadata value": (
        _body(metadata={"k": "v" * 513}),
        "metadata.k",
        "string_above_max_length",
        ["maximum length 512, but got 513"],
    ),
    "metadata odd key": (
        _body(metadata={"ok": "v", "a.b c": "v" * 513}),
        'metadata["a.b c"]',
        "string_above_max_length",
        ["Invalid 'metadata[\"a.b c\"]': string too long"],
    ),
    "metadata key": (
        _body(metadata={"k" * 65: "v"}),
        "metadata",
        "string_above_max_length",
        ["key 'kkkk", "maximum length 64, but got 65"],
    ),
    "metadata size": (
        _body(metadata={str(i): "v" for i in range(17)}),
        "metadata",
        "object_above_max_size",
        ["at most 16 keys, but got 17"],
    ),
    "empty model": (_body(model=""), "model", "string_below_min_length", ["minimum length 1"]),
    "function name": (
        _body(tools=[{"type": "function", "function": {"name": "get weather"}}]),
        "tools[0].function.name",
        "invalid_value",
        ["'get weather'", "^[A-Za-z0-9_-]+$"],
    ),
    "environment": (
        _body(vlmrun={"metadata": {"environment": "test"}}),
        "vlmrun.metadata.environment",
        "invalid_value",
        ["'test'", "Supported values are: 'dev', 'staging', and 'prod'."],
    ),
    "detail": (
        _body(messages=[_user({"type": "image_url", "image_url": {"url": "u", "detail": "max"}})]),
        "messages[0].content[0].image_url.detail",
        "invalid_value",
        ["'auto', 'low', 'high', and 'original'"],
    ),
    "reasoning_effort": (
        _body(reasoning_effort="huge"),
        "reasoning_effort",
        "invalid_value",
        ["Invalid value for 'reasoning_effort': 'huge'.", "'minimal'"],
    ),
    "tool_choice string": (
        _body(tool_choice="sometimes"),
        "tool_choice",
        "invalid_value",
        ["'none', 'auto', and 'required'"],
    ),
    # unknown roles
    "unknown role": (
        _body(messages=[USER, {"role": "bot", "content": "x"}]),
        "messages[1].role",
        "invalid_value",
        [
            "Invalid value for 'messages[1].role': 'bot'.",
            "Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', "
            "and 'function'.",
        ],
    ),
    # unknown part types
    "unknown part type": (
        _body(messages=[USER, USER, _user(TEXT, {"type": "gif", "gif": {}})]),
        "messages[2].content[1].type",
        "invalid_value",
        [
            "'gif'",
            "'text', 'image_url', 'input_audio', 'file', 'input_file', 'video_url', "
            "'audio_url', and 'file_url'",
        ],
    ),
    "user part in system message": (
        _body(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].type",
        "invalid_value",
        ["Supported values are: 'text'."],
    ),
    "refusal part from user": (
        _body(messages=[_user({"type": "refusal", "refusal": "no"})]),
        "messages[0].content[0].type",
        "invalid_value",
        ["'refusal'"],
    ),
    "unknown tool type": (
        _body(tools=[{"type": "web"}]),
        "tools[0].type",
        "invalid_value",
        ["'function' and 'custom'"],
    ),
    "unknown response format": (
        _body(response_format={"type": "xml"}),
        "response_format.type",
        "invalid_value",
        ["'text', 'json_object', and 'json_schema'"],
    ),
    "unknown tool_choice type": (
        _body(tool_choice={"type": "any"}),
        "tool_choice.type",
        "invalid_value",
        ["'function', 'custom', and 'allowed_tools'"],
    ),
    "error after unknown field": (
        _body(top_k=5, temperature=9),
        "temperature",
        "decimal_above_max_value",
        ["<= 2.0, but got 9"],
    ),
}


@pytest.mark.parametrize(("body", "param", "code", "fragments"), CASES.values(), ids=CASES)
def test_bad_request_is_a_400_naming_the_place(
    body: bytes, param: str | None, code: str | None, fragments: list[str]
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(body)
    error = caught.value
    assert isinstance(error, TranslatorError)
    assert error.status == 400
    assert error.param == param
    assert error.code == code
    for fragment in fragments:
        assert fragment in error.message
    assert error.to_openai() == {
        "error": {
            "message": error.message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
    assert json.loads(error.to_json()) == error.to_openai()


def test_messages_name_the_sent_value_without_dumping_huge_ones() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(_body(reasoning_effort="x" * 10_000))
    assert len(caught.value.message) < 300


def test_decode_error_works_without_the_body() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"model":"m","messages":[{"role":"bot"}]}', type=_request_type())
    error = decode_error(caught.value)
    assert error.param == "messages[0].role"
    assert "'system', 'developer'" in error.message


def test_decode_error_of_a_non_validation_failure_is_invalid_json() -> None:
    with pytest.raises(msgspec.DecodeError) as caught:
        msgspec.json.decode(b"{", type=_request_type())
    error = decode_error(caught.value)
    assert error.code == "invalid_json"
    assert error.param is None


def _request_type() -> type:
    from translator._model import ChatRequest

    return ChatRequest


# msgspec's wording is not this project's promise: any message it may word
# differently in a later release still becomes a 400 with the best param.
UNKNOWN_WORDINGS: dict[str, tuple[str, str | None]] = {
    "new wording at a path": (
        "Something no release has said yet - at `$.messages[0].content`",
        "messages[0].content",
    ),
    "new wording, no path": ("A sentence in a new format", None),
    "a path the model does not have": (
        "Expected `str`, got `int` - at `$.nope[3].deeper[...]`",
        "nope[3].deeper[...]",
    ),
    "an index where the body has none": ("Invalid value 7 - at `$.model[12]`", "model[12]"),
    "a length that is not a number": (
        "Expected `str` of length >= many - at `$.model`",
        "model",
    ),
    "an unknown field with a path": (
        "Object contains unknown field `zz` - at `$.messages[0]`",
        "messages[0].zz",
    ),
}


@pytest.mark.parametrize(("text", "param"), UNKNOWN_WORDINGS.values(), ids=UNKNOWN_WORDINGS)
def test_an_unknown_msgspec_wording_is_still_a_400(text: str, param: str | None) -> None:
    error = decode_error(msgspec.ValidationError(text), _body())
    assert error.status == 400
    assert error.param == param
    assert error.message
    assert error.to_openai()["error"]["type"] == "invalid_request_error"


@given(text=st.text(max_size=80), path=st.text(max_size=30))
def test_no_validation_message_makes_decode_error_raise(text: str, path: str) -> None:
    for message in (text, f"{text} - at `${path}`", f"Expected `{text}` - at `$.messages{path}`"):
        error = decode_error(msgspec.ValidationError(message), _body())
        assert error.status == 400


@pytest.mark.parametrize(
    "exc",
    [
        msgspec.DecodeError("words from a future release"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "x"),
    ],
)
def test_an_unparsable_body_is_described_in_our_words_whatever_was_raised(
    exc: msgspec.DecodeError | UnicodeDecodeError,
) -> None:
    error = decode_error(exc, b'{"model": "m"}}')
    assert error.code == "invalid_json"
    assert "more text follows the value, at character 14" in error.message
    assert "future release" not in error.message
