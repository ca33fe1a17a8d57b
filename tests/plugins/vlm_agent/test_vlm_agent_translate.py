"""The vlm-agent backend's pure halves: a request as an execute body, an execution as a reply."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
import translator_plugins.vlm_agent as vlm_agent

from translator._backend import BackendContext, BackendSettings
from translator._compat import REQUEST_FIELDS, Treatment
from translator._model import AssistantPart, Message, UserPart
from translator._openai import decode_request
from translator.errors import (
    InvalidRequestError,
    MalformedUpstreamError,
    NeedsIOError,
    UnsupportedFieldError,
    UpstreamError,
)
from translator.stores import MemoryFileStore

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGAAAAAEAAH2"
    "FzhVAAAAAElFTkSuQmCC"
)


def backend(files: Any = None, **options: Any) -> vlm_agent.VlmAgentBackend:
    settings = BackendSettings(
        plugin="vlm-agent", base_url="http://127.0.0.1:9/v1", options=options
    )
    made = vlm_agent.VlmAgentFactory().create("vlm-agent", settings, BackendContext(files=files))
    assert isinstance(made, vlm_agent.VlmAgentBackend)
    return made


def encode(body: dict[str, Any], agent: vlm_agent.VlmAgentBackend | None = None) -> Any:
    agent = agent or backend()
    request = decode_request(msgspec.json.encode({"model": "vlm-agent-1", **body}))
    agent.matrix.apply(request)
    return msgspec.json.decode(agent.encode_request(request))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# -- the prompt -----------------------------------------------------------------


def test_a_single_question_is_the_prompt_after_the_instructions() -> None:
    sent = encode(
        {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
                user("What is a VLM?"),
            ]
        }
    )
    assert sent["config"]["prompt"] == (
        "You are a helpful assistant.\n\nAnswer briefly.\n\nWhat is a VLM?"
    )


def test_a_conversation_is_a_transcript_with_instructions_first_and_the_last_user_turn_last() -> (
    None
):
    sent = encode(
        {
            "messages": [
                user("Hi"),
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "system", "content": "Be terse."},
                {"role": "user", "name": "ana", "content": "Name a colour."},
                {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
                user("Another one?"),
            ]
        }
    )
    assert sent["config"]["prompt"] == (
        "Be terse.\n\n"
        "User: Hi\n\n"
        "Assistant: Hello! How can I help?\n\n"
        "User (ana): Name a colour.\n\n"
        "Assistant: Blue.\n\n"
        "User: Another one?"
    )


def test_media_become_inputs_keyed_by_kind_with_markers_where_they_stood() -> None:
    sent = encode(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
                        {"type": "text", "text": "with"},
                        {"type": "image_url", "image_url": {"url": "https://img.test/b.jpg"}},
                        {"type": "video_url", "video_url": {"url": "https://v.test/a.mp4"}},
                        {"type": "audio_url", "audio_url": {"url": "https://a.test/a.mp3"}},
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                        {"type": "file_url", "file_url": {"url": "https://f.test/a.pdf"}},
                        {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}},
                        {"type": "input_file", "file_id": "agent-own-1"},
                    ],
                }
            ]
        }
    )
    assert sent["config"]["prompt"] == (
        "Compare\n[image_1]\nwith\n[image_2]\n[video_1]\n[audio_1]\n[audio_2]\n"
        "[file_1]\n[file_2]\n[file_3]"
    )
    assert sent["inputs"] == {
        "image_1": {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
        "image_2": {"type": "image_url", "image_url": {"url": "https://img.test/b.jpg"}},
        "video_1": {"type": "video_url", "video_url": {"url": "https://v.test/a.mp4"}},
        "audio_1": {"type": "audio_url", "audio_url": {"url": "https://a.test/a.mp3"}},
        "audio_2": {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,UklGRg=="}},
        "file_1": {"type": "file_url", "file_url": {"url": "https://f.test/a.pdf"}},
        "file_2": {"type": "file_url", "file_url": {"url": "data:application/pdf;base64,JVBERi0="}},
        "file_3": {"type": "input_file", "file_id": "agent-own-1"},
    }


def test_no_media_means_no_inputs_and_no_domain_means_no_name() -> None:
    sent = encode({"messages": [user("Hello")]})
    assert sent["inputs"] is None
    assert sent["name"] is None
    assert sent["batch"] is True
    assert "json_schema" not in sent["config"]


def test_a_conversation_ending_with_the_assistant_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        encode({"messages": [user("Hi"), {"role": "assistant", "content": "Hello"}]})
    assert caught.value.param == "messages[1]"
    assert caught.value.status == 400


def test_a_conversation_without_a_user_message_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        encode({"messages": [{"role": "system", "content": "Be nice."}]})
    assert caught.value.param == "messages"


def test_assistant_tool_calls_are_replayed_into_the_prompt() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    sent = encode(
        {
            "messages": [
                user("Hi"),
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
                user("Well?"),
            ]
        }
    )
    assert sent["config"]["prompt"] == (
        'User: Hi\n\nAssistant: called f({"a":1})\n\nTool (f): done\n\nUser: Well?'
    )
    empty = {"role": "assistant", "content": "Hello", "tool_calls": []}
    sent = encode({"messages": [user("Hi"), empty, user("Well?")]})
    assert sent["config"]["prompt"] == "User: Hi\n\nAssistant: Hello\n\nUser: Well?"


def test_an_assistant_refusal_is_part_of_the_transcript() -> None:
    refusal = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}
    sent = encode({"messages": [user("Do it"), refusal, user("Please?")]})
    assert sent["config"]["prompt"] == "User: Do it\n\nAssistant: I can't.\n\nUser: Please?"


# -- model, config, metadata -------------------------------------------------------


def test_model_maps_through_options_and_defaults_to_orion_auto() -> None:
    agent = backend(models={"vlm-agent-pro": "vlmrun-orion-1:pro"})
    assert encode({"messages": [user("x")]}, agent)["model"] == "vlmrun-orion-1:auto"
    pro = encode({"model": "vlm-agent-pro", "messages": [user("x")]}, agent)
    assert pro["model"] == "vlmrun-orion-1:pro"
    other = backend(default_model="vlmrun-orion-1:fast")
    assert encode({"messages": [user("x")]}, other)["model"] == "vlmrun-orion-1:fast"


def test_json_schema_temperature_and_service_tier_go_to_config() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    sent = encode(
        {
            "messages": [user("Total?")],
            "temperature": 0,
            "service_tier": "flex",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "invoice", "schema": schema},
            },
        }
    )
    assert sent["config"] == {
        "prompt": "Total?",
        "json_schema": schema,
        "temperature": 0.0,
        "service_tier": "flex",
    }
    as_object = encode({"messages": [user("JSON")], "response_format": {"type": "json_object"}})
    assert as_object["config"]["json_schema"] == {"type": "object"}


def test_metadata_has_the_spec_defaults_and_the_top_level_session_id() -> None:
    sent = encode({"messages": [user("x")], "session_id": "sess-1"})
    assert sent["metadata"] == {
        "environment": "prod",
        "session_id": "sess-1",
        "allow_training": True,
        "allow_retention": True,
        "allow_logging": True,
        "extra": None,
    }
    sent = encode(
        {
            "messages": [user("x")],
            "session_id": "top",
            "vlmrun": {
                "domain": "document.invoice",
                "metadata": {"environment": "dev", "session_id": "inner", "extra": {"k": 1}},
            },
        }
    )
    assert sent["name"] == "document.invoice"
    assert sent["metadata"]["environment"] == "dev"
    assert sent["metadata"]["session_id"] == "top"
    assert sent["metadata"]["extra"] == {"k": 1}


def test_toolsets_come_from_options() -> None:
    sent = encode({"messages": [user("x")]}, backend(toolsets=["core", "image"]))
    assert sent["toolsets"] == ["core", "image"]
    assert "toolsets" not in encode({"messages": [user("x")]})


def test_invalid_options_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="poll_intervall"):
        backend(poll_intervall=1)
    with pytest.raises(ValueError, match="poll_interval"):
        backend(poll_interval=0)


# -- files in pure translation -------------------------------------------------------


async def test_a_file_of_our_store_needs_an_upload_before_pure_translation() -> None:
    store = MemoryFileStore()
    ours = await store.put("cat.png", "image/png", b"png", "assistants", scope=None)
    agent = backend(files=store)
    body = {"messages": [{"role": "user", "content": [{"type": "input_file", "file_id": ours.id}]}]}
    with pytest.raises(NeedsIOError) as caught:
        encode(body, agent)
    assert caught.value.param == "messages[0].content[0].file_id"
    theirs = {"messages": [{"role": "user", "content": [{"type": "input_file", "file_id": "x1"}]}]}
    assert encode(theirs, agent)["inputs"]["file_1"] == {"type": "input_file", "file_id": "x1"}


def test_without_a_file_store_a_file_id_is_sent_as_it_is() -> None:
    ours = "file-" + "0" * 24
    body = {"messages": [{"role": "user", "content": [{"type": "input_file", "file_id": ours}]}]}
    sent = encode(body, backend())
    assert sent["inputs"]["file_1"] == {"type": "input_file", "file_id": ours}


# -- decoding executions ---------------------------------------------------------------


def execution(response: Any, **extra: Any) -> bytes:
    body = {
        "id": "exec-9",
        "name": "inline",
        "status": "completed",
        "created_at": "2026-01-02T03:04:05Z",
        "completed_at": "2026-01-02T03:04:09Z",
        "response": response,
        "usage": {"credits_used": 3, "steps": 2, "duration_seconds": 4},
        **extra,
    }
    return msgspec.json.encode(body)


@pytest.mark.parametrize(
    ("response", "content"),
    [
        ("A cat.", "A cat."),
        ({"answer": "A cat."}, "A cat."),
        ({"content": "A cat.", "confidence": 0.9}, "A cat."),
        ({"text": "A dog."}, "A dog."),
        ({"response": "A cow.", "steps": []}, "A cow."),
        ({"animal": "cat", "count": 2}, '{"animal":"cat","count":2}'),
        ([1, 2], "[1,2]"),
        (None, ""),
    ],
)
def test_the_answer_text_for_each_response_shape(response: Any, content: str) -> None:
    reply = backend().decode_response(execution(response), model="vlm-agent-1")
    assert reply.choices[0].message.content == content
    assert reply.model == "vlm-agent-1"
    assert reply.id == "chatcmpl-exec-9"
    assert reply.created == 1767323049


def test_with_a_schema_the_answer_is_the_json_as_sent() -> None:
    reply = backend().decode_response(execution({"answer": "x"}), model="m", json=True)
    assert msgspec.json.decode(reply.choices[0].message.content or "") == {"answer": "x"}


def test_usage_has_the_agent_credits_and_honest_token_estimates() -> None:
    usage = backend().decode_response(execution("four score and seven"), model="m").usage
    assert (usage.credits_used, usage.steps, usage.duration_seconds) == (3, 2, 4)
    assert usage.estimated is True
    assert usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    counted = execution("hi", usage={"credits_used": 1, "prompt_tokens": 7, "completion_tokens": 2})
    usage = backend().decode_response(counted, model="m").usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 2, 9)
    assert usage.estimated is None


def test_a_failed_execution_is_a_502_with_the_agents_message() -> None:
    failed = execution({"error": "Video too long."}, status="failed")
    with pytest.raises(UpstreamError) as caught:
        backend().decode_response(failed, model="m")
    error = caught.value.to_openai()["error"]
    assert caught.value.status == 502
    assert error["type"] == "upstream_error"
    assert error["code"] == "agent_execution_failed"
    assert "exec-9 failed: Video too long." in error["message"]


def test_an_unfinished_or_unreadable_execution_cannot_be_decoded() -> None:
    with pytest.raises(MalformedUpstreamError, match="still running"):
        backend().decode_response(execution(None, status="running"), model="m")
    with pytest.raises(MalformedUpstreamError):
        backend().decode_response(b'{"status": "completed"}', model="m")


# -- the matrix ------------------------------------------------------------------------


def _tags(union: Any) -> set[str]:
    return {m.__struct_config__.tag for m in typing.get_args(union)}


def test_the_matrix_names_every_field_role_and_part_type_with_a_reason() -> None:
    fields = vlm_agent.MATRIX.fields()
    wanted = {
        *REQUEST_FIELDS,
        *(f"role.{r}" for r in _tags(Message)),
        *(f"content.{t}" for t in _tags(UserPart) | _tags(AssistantPart)),
    }
    assert wanted - fields == set()
    assert all(rule.reason for rule in vlm_agent.MATRIX.rules)


@pytest.mark.parametrize(
    ("field", "value", "treatment"),
    [
        ("max_tokens", 10, Treatment.IGNORED),
        ("logprobs", True, Treatment.REJECTED),
        ("logit_bias", {"1": 1}, Treatment.REJECTED),
        ("top_logprobs", 2, Treatment.REJECTED),
        ("presence_penalty", 0.5, Treatment.REJECTED),
        ("frequency_penalty", 0.5, Treatment.REJECTED),
        ("n", 2, Treatment.REJECTED),
        ("n", 1, Treatment.SUPPORTED),
        ("stream", True, Treatment.REJECTED),
        ("stop", ["\n"], Treatment.REJECTED),
        ("model", "m", Treatment.SUPPORTED),
        ("messages", [], Treatment.SUPPORTED),
        ("temperature", 0, Treatment.SUPPORTED),
        ("session_id", "s", Treatment.SUPPORTED),
        ("vlmrun.domain", "d", Treatment.SUPPORTED),
        ("vlmrun.metadata", {}, Treatment.SUPPORTED),
        ("content.input_file", "input_file", Treatment.SUPPORTED),
        ("service_tier", "priority", Treatment.SUPPORTED),
        ("service_tier", "scale", Treatment.REJECTED),
        ("role.tool", "tool", Treatment.SUPPORTED),
    ],
)
def test_the_spec_table(field: str, value: Any, treatment: Treatment) -> None:
    assert vlm_agent.MATRIX.treatment(field, value) is treatment


# Explicit defaults as many OpenAI clients send them: each asks for nothing.
EXPLICIT_DEFAULTS: dict[str, Any] = {
    "logprobs": False,
    "logit_bias": None,
    "top_logprobs": None,
    "presence_penalty": 0,
    "frequency_penalty": 0.0,
    "n": 1,
    "stream": False,
    "stop": None,
    "audio": None,
    "moderation": None,
}
NULLS = ["logprobs", "presence_penalty", "frequency_penalty", "n", "stream", "top_logprobs"]


@pytest.mark.parametrize("defaults", [EXPLICIT_DEFAULTS, dict.fromkeys(NULLS)], ids=str)
def test_explicit_defaults_are_accepted_and_nothing_is_reported(defaults: dict[str, Any]) -> None:
    agent = backend()
    request = decode_request(
        msgspec.json.encode({"model": "m", "messages": [user("x")], **defaults})
    )
    report = agent.matrix.apply(request)
    assert report.actions == []
    sent = msgspec.json.decode(agent.encode_request(request))
    assert sent["config"]["prompt"].endswith("x")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("logprobs", True, "unsupported_parameter"),
        ("logit_bias", {"1": 1}, "unsupported_parameter"),
        ("presence_penalty", 0.5, "unsupported_parameter"),
        ("presence_penalty", -1, "unsupported_parameter"),
        ("frequency_penalty", -0.1, "unsupported_parameter"),
        ("n", 2, "unsupported_value"),
        ("stream", True, "unsupported_value"),
        ("stop", "END", "unsupported_parameter"),
        ("stop", ["END"], "unsupported_parameter"),
    ],
)
def test_a_value_that_asks_for_the_feature_is_still_refused(
    field: str, value: Any, code: str
) -> None:
    request = decode_request(
        msgspec.json.encode({"model": "m", "messages": [user("x")], field: value})
    )
    with pytest.raises(UnsupportedFieldError) as caught:
        backend().matrix.apply(request)
    assert (caught.value.param, caught.value.code) == (field, code)


def test_top_logprobs_asking_for_alternatives_is_refused() -> None:
    # A number needs logprobs: true, which is refused first; the row itself:
    assert vlm_agent.MATRIX.treatment("top_logprobs", 3) is Treatment.REJECTED
    assert vlm_agent.MATRIX.treatment("top_logprobs", None) is Treatment.SUPPORTED
