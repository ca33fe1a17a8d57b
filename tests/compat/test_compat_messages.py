"""Messages a matrix empties: every content part dropped, or every message dropped."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from translator_plugins.ollama import OllamaFactory

from translator._backend import BackendContext, BackendSettings
from translator._compat import Matrix, Mode, Treatment, ignored, rejected
from translator._core import Translator
from translator._model import AssistantMessage, UserMessage
from translator._openai import decode_request, encode_request
from translator.errors import UnsupportedFieldError

MATRIX = Matrix(
    "agent",
    [
        rejected("content.input_audio", "no audio"),
        ignored("content.file", "files go by input_file"),
        ignored("content.refusal", "refusals are not replayed"),
        ignored("role.developer", "no developer instructions"),
    ],
    unknown=Treatment.SUPPORTED,
)

AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
FILE = {"type": "file", "file": {"file_id": "file-1"}}
TEXT = {"type": "text", "text": "and this?"}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def request(*messages: dict[str, Any]) -> Any:
    body = {"model": "m", "messages": list(messages)}
    return decode_request(json.dumps(body).encode())


def hello(text: str = "hello") -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_a_message_whose_parts_are_all_ignored_is_dropped_and_reported() -> None:
    req = request(hello(), {"role": "user", "content": [FILE, FILE]}, hello("bye"))
    report = MATRIX.apply(req)
    assert [m.content for m in req.messages] == ["hello", "bye"]
    assert report.ignored == ["messages[1].content[0]", "messages[1].content[1]", "messages[1]"]
    message_drop = report.actions[-1]
    assert message_drop.field == "content.file"
    assert "every part of its content was dropped" in message_drop.reason
    assert b'"content":[]' not in encode_request(req)


def test_a_message_emptied_leniently_is_relaxed_too() -> None:
    req = request(hello(), {"role": "user", "content": [AUDIO, FILE]})
    report = MATRIX.apply(req, mode=Mode.LENIENT)
    assert len(req.messages) == 1
    assert report.relaxed == ["messages[1].content[0]", "messages[1]"]
    assert report.ignored == ["messages[1].content[1]"]
    assert report.header() == "messages[1].content[0], messages[1].content[1], messages[1]"


def test_in_strict_mode_the_rejected_part_is_the_error() -> None:
    with pytest.raises(UnsupportedFieldError) as info:
        MATRIX.apply(request(hello(), {"role": "user", "content": [AUDIO]}))
    assert info.value.param == "messages[1].content[0]"


def test_a_message_with_a_part_left_is_kept() -> None:
    req = request({"role": "user", "content": [FILE, TEXT]})
    report = MATRIX.apply(req)
    message = req.messages[0]
    assert isinstance(message, UserMessage)
    assert isinstance(message.content, list)
    assert len(message.content) == 1
    assert report.ignored == ["messages[0].content[0]"]


def test_an_assistant_message_calling_tools_keeps_its_calls() -> None:
    refusal = {"type": "refusal", "refusal": "no"}
    calling = {"role": "assistant", "content": [refusal], "tool_calls": [CALL]}
    answer = {"role": "tool", "content": "42", "tool_call_id": "c1"}
    req = request(hello(), calling, answer)
    report = MATRIX.apply(req)
    assert len(req.messages) == 3
    assistant = req.messages[1]
    assert isinstance(assistant, AssistantMessage)
    assert assistant.content is None
    assert assistant.tool_calls[0].id == "c1"  # type: ignore[index]
    assert report.ignored == ["messages[1].content[0]"]
    sent = msgspec.json.decode(encode_request(req))["messages"][1]
    assert sent["content"] is None


def test_an_assistant_message_with_nothing_else_is_dropped() -> None:
    refusal = {"type": "refusal", "refusal": "no"}
    req = request(hello(), {"role": "assistant", "content": [refusal]}, hello("again"))
    report = MATRIX.apply(req)
    assert [m.content for m in req.messages] == ["hello", "again"]
    assert report.ignored == ["messages[1].content[0]", "messages[1]"]


def test_no_message_left_is_a_400_even_when_lenient() -> None:
    req = request(
        {"role": "developer", "content": "be brief"}, {"role": "user", "content": [AUDIO]}
    )
    with pytest.raises(UnsupportedFieldError) as info:
        MATRIX.apply(req, mode=Mode.LENIENT)
    error = info.value
    assert (error.status, error.param, error.code) == (400, "messages", "unsupported_value")
    assert error.message.startswith("The agent backend has no message left to answer")
    assert "messages[0] ignored" in error.message
    assert "messages[1].content[0] rejected (relaxed)" in error.message


async def test_ollama_is_not_sent_an_empty_message() -> None:
    settings = BackendSettings(plugin="ollama", mode=Mode.LENIENT)
    context = BackendContext()
    backend = OllamaFactory().create("ollama", settings, context)
    try:
        translator = Translator(backends={"ollama": backend})
        body = {
            "model": "llava",
            "messages": [
                {"role": "user", "content": [AUDIO]},
                {"role": "user", "content": "what did I say?"},
            ],
        }
        native = json.loads(translator.translate_request(json.dumps(body).encode(), "ollama"))
        assert native["messages"] == [{"role": "user", "content": "what did I say?"}]
    finally:
        await backend.aclose()
        await context.aclose()
