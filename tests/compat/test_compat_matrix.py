"""Applying a compatibility matrix to decoded requests: drops, rejections, reports."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from translator._compat import (
    Above,
    Equals,
    Matrix,
    Mode,
    OneOf,
    Treatment,
    emulated,
    ignored,
    rejected,
    supported,
)
from translator._model import ImagePart, TextPart, UserMessage, tag_of, unknown_fields
from translator._openai import decode_request, encode_request
from translator.errors import UnsupportedFieldError

ROWS = [
    supported("model", "the agent's name"),
    supported("messages", "rendered into the prompt"),
    supported("temperature", "sent as it is"),
    ignored("max_tokens", "accepted, but the full output is returned"),
    supported("n", "one answer per request"),
    rejected("n", "an execution has one answer", when=Above(1)),
    rejected("logprobs", "no log probabilities."),
    rejected("stop", "no stop sequences"),
    emulated("stream", "the whole answer is streamed as chunks", when=Equals(True)),
    supported("stream", "false asks for the whole answer"),
    supported("stream_options", "decided option by option"),
    supported("stream_options.include_usage", "a usage chunk ends the stream"),
    ignored("stream_options.include_obfuscation", "no padding is added"),
    supported("response_format", "decided by type"),
    supported("response_format.json_schema", "sent as the schema"),
    rejected("response_format.json_object", "only a JSON schema can be enforced"),
    supported("tool_choice", "decided by form"),
    supported("tool_choice.auto", "the default"),
    rejected("tool_choice.required", "the backend cannot be forced to call a tool"),
    ignored("tool_choice.function", "the backend picks its tools itself"),
    supported("tools", "decided by type"),
    ignored("tools.custom", "function tools only"),
    supported("vlmrun", "decided field by field"),
    ignored("vlmrun.domain", "no domains here"),
    supported("vlmrun.metadata", "sent as metadata"),
    supported("role.user", "a turn"),
    ignored("role.developer", "no developer instructions"),
    rejected("role.tool", "no client tools, so no results"),
    emulated("role.function", "sent as a user turn"),
    supported("content.text", "text"),
    supported("content.image_url", "an image input"),
    ignored("content.image_url.detail", "images are always seen in full"),
    rejected("content.input_audio", "no audio"),
    ignored("content.file", "files go by input_file"),
]
MATRIX = Matrix("agent", ROWS)


def request(**fields: Any) -> Any:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return decode_request(json.dumps(body).encode())


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


TEXT = {"type": "text", "text": "look"}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
FILE = {"type": "file", "file": {"file_id": "file-1"}}


def rejection(matrix: Matrix, req: Any, **kw: Any) -> UnsupportedFieldError:
    with pytest.raises(UnsupportedFieldError) as info:
        matrix.apply(req, **kw)
    return info.value


# -- ignored ------------------------------------------------------------------


def test_ignored_field_is_dropped_and_reported() -> None:
    req = request(max_tokens=5, temperature=0)
    report = MATRIX.apply(req)
    assert req.max_tokens is UNSET
    assert req.temperature == 0
    assert report.dropped == ["max_tokens"]
    assert report.ignored == ["max_tokens"]
    assert report.header() == "max_tokens"
    assert report.actions[0].reason == "accepted, but the full output is returned"
    assert b"max_tokens" not in encode_request(req)


def test_nothing_to_report_for_a_plain_request() -> None:
    req = request(temperature=0.5, n=1)
    report = MATRIX.apply(req)
    assert report.actions == []
    assert report.header() == ""
    assert req.n == 1


def test_drops_are_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="translator.compat"):
        MATRIX.apply(request(max_tokens=5))
    assert any(
        "agent" in r.getMessage() and "max_tokens ignored" in r.getMessage() for r in caplog.records
    )


def test_fields_not_sent_are_not_checked() -> None:
    strict = Matrix("agent", [rejected("temperature", "fixed")], unknown=Treatment.SUPPORTED)
    assert strict.apply(request()).actions == []
    with pytest.raises(UnsupportedFieldError):
        strict.apply(request(temperature=None))  # sent, even as null


# -- rejected -----------------------------------------------------------------


def test_rejected_field_is_an_openai_400() -> None:
    error = rejection(MATRIX, request(logprobs=True))
    body = error.to_openai()["error"]
    assert error.status == 400
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "logprobs"
    assert body["code"] == "unsupported_parameter"
    assert body["message"] == "The agent backend does not support 'logprobs': no log probabilities."


def test_value_rule_rejects_only_matching_values() -> None:
    assert MATRIX.apply(request(n=1)).actions == []
    error = rejection(MATRIX, request(n=3))
    assert (error.param, error.code) == ("n", "unsupported_value")
    assert "agent" in error.message
    assert "'n' > 1 (got 3)" in error.message
    assert "an execution has one answer" in error.message


def test_a_field_with_only_conditional_rules_is_supported_otherwise() -> None:
    matrix = Matrix("x", [rejected("n", "one answer", when=Above(1))])
    assert matrix.apply(request(n=1)).actions == []
    assert matrix.treatment("n", 1) is Treatment.SUPPORTED
    assert matrix.treatment("n", 2) is Treatment.REJECTED


# -- lenient ------------------------------------------------------------------


def test_lenient_mode_turns_rejections_into_reported_drops() -> None:
    req = request(logprobs=True, n=2, stop=["x"], max_tokens=3)
    report = MATRIX.apply(req, mode=Mode.LENIENT)
    assert (req.logprobs, req.n, req.stop, req.max_tokens) == (UNSET, UNSET, UNSET, UNSET)
    assert report.dropped == ["logprobs", "max_tokens", "n", "stop"]
    assert report.relaxed == ["logprobs", "n", "stop"]
    assert report.ignored == ["max_tokens"]
    assert "logprobs rejected (relaxed)" in report.describe()


def test_lenient_by_default_through_with_mode() -> None:
    lenient = MATRIX.with_mode(Mode.LENIENT)
    assert lenient.apply(request(logprobs=True)).relaxed == ["logprobs"]
    assert lenient.with_mode("lenient") is lenient
    # the original is untouched, and a request can still ask for strictness
    assert MATRIX.mode is Mode.STRICT
    rejection(lenient, request(logprobs=True), mode=Mode.STRICT)


# -- roles and parts ----------------------------------------------------------


def test_part_type_rejected_names_its_path() -> None:
    req = request(messages=[{"role": "user", "content": "a"}, user(TEXT, AUDIO)])
    error = rejection(MATRIX, req)
    assert error.param == "messages[1].content[1]"
    assert error.code == "unsupported_value"
    assert "'content.input_audio'" in error.message
    assert "no audio" in error.message


def test_dropped_parts_keep_the_rest_and_report_original_indices() -> None:
    req = request(messages=[user(AUDIO, TEXT, FILE, IMAGE)])
    report = MATRIX.apply(req, mode=Mode.LENIENT)
    message = req.messages[0]
    assert isinstance(message, UserMessage)
    assert isinstance(message.content, list)
    assert [type(p) for p in message.content] == [TextPart, ImagePart]
    assert report.dropped == ["messages[0].content[0]", "messages[0].content[2]"]
    assert report.relaxed == ["messages[0].content[0]"]
    assert report.ignored == ["messages[0].content[2]"]


def test_ignored_role_drops_the_message() -> None:
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]
    req = request(messages=messages)
    report = MATRIX.apply(req)
    assert [type(m) for m in req.messages] == [UserMessage]
    assert report.ignored == ["messages[0]"]
    assert report.actions[0].field == "role.developer"


def test_rejected_role_names_the_message() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    # In a session, the call a tool result answers may be in the stored history.
    error = rejection(MATRIX, request(messages=messages, vlmrun={"metadata": {"session_id": "s"}}))
    assert (error.param, error.code) == ("messages[1]", "unsupported_value")
    assert "'role.tool'" in error.message


def test_emulated_role_is_kept_and_reported() -> None:
    messages = [{"role": "function", "name": "f", "content": "1"}, {"role": "user", "content": "x"}]
    req = request(messages=messages)
    report = MATRIX.apply(req)
    assert len(req.messages) == 2
    assert report.dropped == []
    assert report.emulated == ["role.function"]


def test_image_detail_row() -> None:
    image = {"type": "image_url", "image_url": {**IMAGE["image_url"], "detail": "low"}}
    req = request(messages=[user(TEXT, image)])
    report = MATRIX.apply(req)
    part = req.messages[0].content[1]  # type: ignore[union-attr,index]
    assert isinstance(part, ImagePart)
    assert part.image_url.detail is UNSET
    assert part.image_url.url == "https://example.invalid/a.png"
    assert report.ignored == ["messages[0].content[1].image_url.detail"]


def test_image_without_detail_is_left_alone() -> None:
    assert MATRIX.apply(request(messages=[user(IMAGE)])).actions == []


# -- sub-feature rows of top-level fields ---------------------------------------


def test_response_format_by_type() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    assert MATRIX.apply(request(response_format=schema)).actions == []
    # a type no row names follows response_format itself
    assert MATRIX.apply(request(response_format={"type": "text"})).actions == []
    error = rejection(MATRIX, request(response_format={"type": "json_object"}))
    assert (error.param, error.code) == ("response_format", "unsupported_value")
    assert "only a JSON schema can be enforced" in error.message


def test_tool_choice_by_form() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert MATRIX.apply(request(tool_choice="auto", tools=tools)).actions == []
    assert MATRIX.apply(request(tool_choice="none", tools=tools)).actions == []
    error = rejection(MATRIX, request(tool_choice="required", tools=tools))
    assert (error.param, error.code) == ("tool_choice", "unsupported_value")
    req = request(tool_choice={"type": "function", "function": {"name": "f"}}, tools=tools)
    report = MATRIX.apply(req)
    assert req.tool_choice is UNSET
    assert report.ignored == ["tool_choice"]
    assert report.actions[0].field == "tool_choice.function"


def test_tools_by_type() -> None:
    function = {"type": "function", "function": {"name": "f"}}
    custom = {"type": "custom", "custom": {"name": "c"}}
    req = request(tools=[custom, function])
    report = MATRIX.apply(req)
    assert [tag_of(t) for t in req.tools] == ["function"]
    assert report.ignored == ["tools[0]"]
    only_custom = request(tools=[custom])
    MATRIX.apply(only_custom)
    assert only_custom.tools is UNSET


def test_stream_options_by_option() -> None:
    req = request(stream=True, stream_options={"include_usage": True, "include_obfuscation": False})
    report = MATRIX.apply(req)
    assert report.ignored == ["stream_options.include_obfuscation"]
    assert req.stream_options.include_usage is True
    assert req.stream_options.include_obfuscation is UNSET
    assert MATRIX.apply(request(stream_options=None)).actions == []


def test_vlmrun_by_field() -> None:
    req = request(vlmrun={"domain": "doc.invoice", "metadata": {"environment": "dev"}})
    report = MATRIX.apply(req)
    assert req.vlmrun.domain is UNSET
    assert req.vlmrun.metadata.environment == "dev"
    assert report.ignored == ["vlmrun.domain"]


def test_sub_feature_rule_in_strict_mode_names_its_path() -> None:
    rows = [rejected("stream_options.include_usage", "no usage")]
    matrix = Matrix("x", rows, unknown=Treatment.SUPPORTED)
    error = rejection(matrix, request(stream=True, stream_options={"include_usage": True}))
    assert (error.param, error.code) == ("stream_options.include_usage", "unsupported_parameter")


# -- emulated -----------------------------------------------------------------


def test_emulated_stream_is_reported_not_dropped() -> None:
    req = request(stream=True)
    report = MATRIX.apply(req)
    assert report.emulated == ["stream"]
    assert report.emulates("stream")
    assert report.dropped == []
    assert req.stream is UNSET  # the translator streams; the backend is asked for a whole answer
    assert MATRIX.treatment("stream", True) is Treatment.EMULATED
    assert MATRIX.treatment("stream", False) is Treatment.SUPPORTED
    assert MATRIX.apply(request(stream=False)).actions == []


# -- unknown fields -------------------------------------------------------------


def test_unknown_field_rejected_with_openais_message() -> None:
    error = rejection(MATRIX, request(frobnicate=1))
    assert error.message == "Unrecognized request argument supplied: frobnicate"
    assert (error.param, error.code, error.status) == ("frobnicate", "unsupported_parameter", 400)


def test_known_field_no_rule_names_follows_the_unknown_policy() -> None:
    error = rejection(MATRIX, request(top_p=0.5))
    assert error.message == "Unrecognized request argument supplied: top_p"
    assert MATRIX.treatment("top_p") is Treatment.REJECTED


def test_unknown_fields_ignored() -> None:
    matrix = Matrix("x", ROWS, unknown=Treatment.IGNORED)
    req = request(frobnicate=1, top_p=0.5)
    report = matrix.apply(req)
    assert set(report.ignored) == {"frobnicate", "top_p"}
    assert unknown_fields(req) == {}
    assert req.top_p is UNSET


def test_unknown_fields_lenient() -> None:
    req = request(frobnicate=1)
    report = MATRIX.apply(req, mode=Mode.LENIENT)
    assert report.relaxed == ["frobnicate"]
    assert unknown_fields(req) == {}


def test_unknown_fields_supported_are_passed_on() -> None:
    matrix = Matrix("x", ROWS, unknown=Treatment.SUPPORTED)
    req = request(frobnicate={"a": 1}, top_p=0.5)
    assert matrix.apply(req).actions == []
    assert msgspec.json.decode(encode_request(req))["frobnicate"] == {"a": 1}
    assert req.top_p == 0.5


def test_rules_for_fields_outside_the_model() -> None:
    rows = [
        ignored("thinking", "the upstream thinks anyway"),
        rejected("reasoning", "not here", when=Equals(True)),
    ]
    matrix = Matrix("x", rows, unknown=Treatment.SUPPORTED)
    req = request(thinking=True, reasoning=False, other=1)
    report = matrix.apply(req)
    assert report.ignored == ["thinking"]
    assert set(unknown_fields(req)) == {"reasoning", "other"}
    error = rejection(matrix, request(reasoning=True))
    assert (error.param, error.code) == ("reasoning", "unsupported_value")
    assert "not here" in error.message


# -- building -------------------------------------------------------------------


def test_overrides_replace_every_rule_for_their_fields() -> None:
    relaxed = MATRIX.with_overrides([supported("n", "set in the configuration")])
    assert relaxed.apply(request(n=4)).actions == []
    assert relaxed.decide("n", 4) == supported("n", "set in the configuration")
    assert MATRIX.treatment("n", 4) is Treatment.REJECTED
    tightened = MATRIX.with_overrides([rejected("temperature", "fixed by the operator")])
    error = rejection(tightened, request(temperature=1))
    assert "fixed by the operator" in error.message
    assert MATRIX.with_overrides([]) is MATRIX


def test_treatment_falls_back_to_parents_and_policy() -> None:
    assert MATRIX.treatment("content.image_url") is Treatment.SUPPORTED
    assert MATRIX.treatment("content.video_url") is Treatment.SUPPORTED  # follows messages
    assert MATRIX.treatment("tool_choice.none") is Treatment.SUPPORTED  # follows tool_choice
    assert MATRIX.treatment("frobnicate") is Treatment.REJECTED
    assert Matrix("x", []).treatment("model") is Treatment.SUPPORTED


def test_required_fields_are_taken_even_by_an_empty_matrix() -> None:
    assert Matrix("x", []).apply(request()).actions == []


def test_invalid_matrices_are_refused() -> None:
    with pytest.raises(ValueError, match="messages"):
        Matrix("x", [ignored("messages", "no")])
    with pytest.raises(ValueError, match="emulated"):
        Matrix("x", [], unknown=Treatment.EMULATED)


def test_renamed_keeps_rules_and_policy() -> None:
    copy = MATRIX.renamed("other")
    assert (copy.backend, copy.rules, copy.unknown) == ("other", MATRIX.rules, MATRIX.unknown)
    assert "other" in rejection(copy, request(logprobs=True)).message


# -- through the Python API -------------------------------------------------------


async def test_translator_returns_what_the_matrix_did() -> None:
    from translator_plugins.echo import EchoFactory

    from translator._backend import BackendContext, BackendSettings
    from translator._core import Translator

    overrides = {"max_tokens": Treatment.IGNORED, "n": Treatment.REJECTED}
    settings = BackendSettings(plugin="echo", matrix=overrides)
    backend = EchoFactory().create("echo", settings, BackendContext())
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with Translator(backends={"echo": backend}) as translator:
        done = await translator.complete(json.dumps(body).encode(), "echo")
        assert done.report.dropped == ["max_tokens"]
        assert done.report.actions[0].reason == "set in the configuration"
        assert done.response.choices[0].message.content == "hi"
        with_n = json.dumps({**body, "n": 2}).encode()
        with pytest.raises(UnsupportedFieldError) as info:
            await translator.complete(with_n, "echo")
        assert info.value.param == "n"
        relaxed = await translator.complete(with_n, "echo", mode=Mode.LENIENT)
        assert relaxed.report.relaxed == ["n"]


def test_overrides_naming_a_row_that_does_not_exist_are_refused() -> None:
    with pytest.raises(ValueError, match=r"tool_choice\.requried"):
        MATRIX.with_overrides([rejected("tool_choice.requried", "typo")])


def test_emulated_parameter_is_taken_off_and_reported() -> None:
    rows = [emulated("stream_options.include_usage", "the translator counts usage")]
    matrix = Matrix("x", rows, unknown=Treatment.SUPPORTED)
    req = request(stream=True, stream_options={"include_usage": True})
    report = matrix.apply(req)
    assert report.emulated == ["stream_options.include_usage"]
    assert report.dropped == []
    assert req.stream_options.include_usage is UNSET


# -- conditions -------------------------------------------------------------------


def test_one_of_condition() -> None:
    rows = [
        rejected("service_tier", "only the default tiers", when=OneOf(("flex", "priority"))),
        supported("service_tier", "sent as it is"),
    ]
    matrix = Matrix("x", rows, unknown=Treatment.SUPPORTED)
    assert matrix.apply(request(service_tier="auto")).actions == []
    error = rejection(matrix, request(service_tier="flex"))
    assert '\'service_tier\' in "flex", "priority" (got "flex")' in error.message
    assert error.code == "unsupported_value"


def test_equals_never_confuses_booleans_and_numbers() -> None:
    assert Equals(1).matches(1)
    assert not Equals(1).matches(True)
    assert not Equals(False).matches(0)
    assert Equals(0).matches(0.0)
    assert not OneOf((1, 2)).matches(True)


def test_a_row_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match=r"content\.input_vidoe"):
        Matrix("x", [rejected("content.input_vidoe", "typo")])
