"""The ollama backend's pure halves: OpenAI requests to /api/chat bodies, replies back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from translator_plugins.ollama import MATRIX, OllamaBackend

from translator import Translator
from translator._compat import PART_TYPES, REQUEST_FIELDS, ROLES, Treatment
from translator._fetch import MediaFetcher
from translator._http import HttpClient
from translator.errors import (
    FetchRefusedError,
    InvalidRequestError,
    MalformedUpstreamError,
    NeedsIOError,
    UnsupportedFieldError,
    UpstreamError,
)

B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def make_translator(models: dict[str, str] | None = None) -> Translator:
    backend = OllamaBackend(HttpClient().bind("ollama"), MediaFetcher(), models=models)
    return Translator({"ollama": backend})


def native(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    translator = make_translator(**kwargs)
    result: dict[str, Any] = json.loads(
        translator.translate_request(json.dumps(body).encode(), "ollama")
    )
    return result


def request(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "llava", "messages": list(messages), **fields}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


def test_the_matrix_names_every_field_role_and_part() -> None:
    wanted = {*REQUEST_FIELDS, *(f"role.{r}" for r in ROLES), *(f"content.{p}" for p in PART_TYPES)}
    assert wanted <= MATRIX.fields()
    assert all(rule.reason.strip() for rule in MATRIX.rules)
    assert MATRIX.treatment("session_id") is Treatment.EMULATED
    assert MATRIX.decide("session_id") is not None
    assert MATRIX.decide("session_id").reason == "the translator keeps the conversation"  # type: ignore[union-attr]


def test_a_plain_request_sends_stream_explicitly_and_no_options() -> None:
    body = native(request({"role": "user", "content": "Hi"}))
    assert body == {
        "model": "llava",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }
    streamed = native(request({"role": "user", "content": "Hi"}, stream=True))
    assert streamed["stream"] is True


def test_parts_are_flattened_and_a_data_uri_is_sliced() -> None:
    body = native(
        request(
            {"role": "developer", "content": [text("Be brief."), text("Be kind.")]},
            user(text("What is this?"), image(f"data:image/png;base64,{B64}"), text("Thanks")),
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief.\nBe kind."},
        {"role": "user", "content": "What is this?\nThanks", "images": [B64]},
    ]


def test_an_image_url_needs_fetching_first() -> None:
    with pytest.raises(NeedsIOError) as info:
        native(request(user(text("What is this?"), image("https://example.com/cat.png"))))
    assert info.value.status == 400
    assert info.value.param == "messages[0].content[1].image_url.url"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("data:text/plain;base64,aGVsbG8=", InvalidRequestError),
        ("data:image/svg+xml,<svg/>", FetchRefusedError),
        ("file:///etc/passwd", FetchRefusedError),
    ],
)
def test_an_unusable_image_source_is_a_400(url: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        native(request(user(text("What is this?"), image(url))))
    assert info.value.param == "messages[0].content[1].image_url.url"  # type: ignore[attr-defined]
    assert info.value.status == 400  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "input_audio"),
        ({"type": "input_file", "file_id": "file-1"}, "input_file"),
        ({"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}, "video_url"),
    ],
)
def test_other_media_are_rejected_by_the_matrix(part: dict[str, Any], kind: str) -> None:
    with pytest.raises(UnsupportedFieldError) as info:
        native(request(user(text("Listen"), part)))
    assert info.value.param == "messages[0].content[1]"
    assert kind in info.value.message


def test_options_are_mapped_and_nothing_is_injected() -> None:
    body = native(
        request(
            {"role": "user", "content": "Hi"},
            max_tokens=50,
            temperature=0.2,
            top_p=0.9,
            seed=7,
            stop="\n\n",
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        )
    )
    assert body["options"] == {
        "num_predict": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n\n"],
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }
    both = native(
        request({"role": "user", "content": "Hi"}, max_tokens=50, max_completion_tokens=9)
    )
    assert both["options"] == {"num_predict": 9}
    stops = native(request({"role": "user", "content": "Hi"}, stop=["a", "b"], temperature=0))
    assert stops["options"] == {"stop": ["a", "b"], "temperature": 0}


def test_response_formats() -> None:
    hi = {"role": "user", "content": "Weather?"}
    schema = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
    assert native(request(hi, response_format=schema))["format"] == SCHEMA
    assert native(request(hi, response_format={"type": "json_object"}))["format"] == "json"
    assert "format" not in native(request(hi, response_format={"type": "text"}))


def test_tools_pass_through_and_tool_choice_none_leaves_them_out() -> None:
    hi = {"role": "user", "content": "Weather in Paris?"}
    body = native(request(hi, tools=[WEATHER_TOOL], tool_choice="auto"))
    assert body["tools"] == [WEATHER_TOOL]
    assert "tools" not in native(request(hi, tools=[WEATHER_TOOL], tool_choice="none"))
    forced = native(request(hi, tools=[WEATHER_TOOL], tool_choice="required"))
    assert "tools" not in forced
    assert forced["format"] == WEATHER_TOOL["function"]["parameters"]
    assert forced["messages"][-1]["role"] == "system"
    assert "get_weather" in forced["messages"][-1]["content"]


def conversation(arguments: str) -> dict[str, Any]:
    return request(
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        tools=[WEATHER_TOOL],
    )


def test_tool_calls_go_as_objects_and_results_carry_the_tools_name() -> None:
    body = native(conversation('{"city": "Paris"}'))
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                    "id": "call_1",
                }
            ],
        },
        {
            "role": "tool",
            "content": "18C, sunny",
            "tool_name": "get_weather",
            "tool_call_id": "call_1",
        },
    ]


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"Paris"', "null"])
def test_malformed_arguments_are_a_400(arguments: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        native(conversation(arguments))
    assert info.value.status == 400
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize("arguments", ["", "  "])
def test_empty_arguments_go_as_an_empty_object(arguments: str) -> None:
    body = native(conversation(arguments))
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == {}


def test_malformed_legacy_arguments_are_a_400_naming_function_call() -> None:
    legacy = {"role": "assistant", "function_call": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(InvalidRequestError) as info:
        native(request({"role": "user", "content": "Hi"}, legacy))
    assert info.value.param == "messages[1].function_call.arguments"


def test_message_names_are_not_sent_and_developer_is_system() -> None:
    body = native(
        request(
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": "Hi", "name": "ana"},
            {"role": "user", "content": "Again"},
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Again"},
    ]


def test_the_model_is_mapped_through_the_options() -> None:
    hi = {"role": "user", "content": "Hi"}
    assert (
        native(request(hi, model="gpt-4o"), models={"gpt-4o": "llava:13b"})["model"] == "llava:13b"
    )
    assert (
        native(request(hi, model="qwen3:8b"), models={"gpt-4o": "llava:13b"})["model"] == "qwen3:8b"
    )


def test_session_fields_are_not_sent_to_ollama() -> None:
    translator = make_translator()
    body = request(
        {"role": "user", "content": "Hi"},
        session_id="s-1",
        vlmrun={"domain": "document.invoice", "metadata": {"session_id": "s-1"}},
    )
    prepared, report, backend = translator.prepare(json.dumps(body).encode(), "ollama")
    assert "session_id" in report.emulated
    sent = json.loads(backend.encode_request(prepared))
    assert sent == {
        "model": "llava",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"top_logprobs": 2, "logprobs": True}, "logprobs"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"keep_alive": "5m"}, "keep_alive"),
    ],
)
def test_what_ollama_cannot_do_is_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFieldError) as info:
        native(request({"role": "user", "content": "Hi"}, **fields))
    assert info.value.param == param


def test_n_above_one_is_an_unsupported_value_like_the_vlm_agents() -> None:
    with pytest.raises(UnsupportedFieldError) as info:
        native(request({"role": "user", "content": "Hi"}, n=2))
    assert (info.value.param, info.value.code) == ("n", "unsupported_value")
    assert "'n' > 1 (got 2)" in info.value.message
    assert MATRIX.treatment("n", 1) is Treatment.SUPPORTED


def test_explicit_defaults_and_nulls_ask_for_nothing() -> None:
    defaults = {
        "stop": None,
        "logprobs": False,
        "n": 1,
        "stream": False,
        "logit_bias": None,
        "top_logprobs": None,
        "audio": None,
        "moderation": None,
    }
    nulls = dict.fromkeys(["logprobs", "n", "stream", "presence_penalty", "frequency_penalty"])
    for fields in (defaults, nulls):
        body = native(request({"role": "user", "content": "Hi"}, **fields))
        assert body == {
            "model": "llava",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": False,
        }
    zero = native(request({"role": "user", "content": "Hi"}, presence_penalty=0))
    assert zero["options"] == {"presence_penalty": 0}


def test_harmless_values_pass() -> None:
    body = native(request({"role": "user", "content": "Hi"}, n=1, logprobs=False, user="u-1"))
    assert body == {
        "model": "llava",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }


def reply(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "model": "llava",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Hello"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 12,
        "eval_count": 3,
    }
    return json.dumps({**base, **fields}).encode()


def openai_reply(body: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        make_translator().translate_response(body, "ollama", model="my-model")
    )
    return result


def test_a_reply_becomes_a_chat_completion() -> None:
    answer = openai_reply(reply())
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "my-model"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert openai_reply(reply(done_reason="length"))["choices"][0]["finish_reason"] == "length"


def test_tool_calls_come_back_with_ids_and_string_arguments() -> None:
    calls = [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"id": "call_x", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
    ]
    answer = openai_reply(reply(message={"role": "assistant", "content": "", "tool_calls": calls}))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    made = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in made] == [
        {"city": "Paris"},
        {"city": "Oslo"},
    ]
    assert made[0]["id"].startswith("call_")
    assert made[1]["id"] == "call_x"
    assert {c["type"] for c in made} == {"function"}


def test_an_error_reply_keeps_ollamas_message() -> None:
    with pytest.raises(UpstreamError, match="model runner has unexpectedly stopped"):
        openai_reply(b'{"error": "model runner has unexpectedly stopped"}')
    with pytest.raises(MalformedUpstreamError):
        openai_reply(b"<html>")
