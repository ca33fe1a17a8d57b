"""The openai-compatible backend's pure parts: SSE parsing, decoding, matrix, factory."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from translator_plugins.openai_compat import (
    MATRIX,
    OpenAICompatBackend,
    OpenAICompatFactory,
    decode_response,
    parse_error,
)

from translator._backend import BackendContext, BackendSettings
from translator._compat import REQUEST_FIELDS, Treatment
from translator._http import UpstreamDetail
from translator._openai.sse import SSEDecoder, SSEEvent
from translator.errors import MalformedUpstreamError, UpstreamStatusError
from translator.testing import PART_TYPES, ROLES

# -- SSE -----------------------------------------------------------------------

WIRE = (
    b": hello\n\n"
    b"data: one\n\n"
    b"event: note\ndata: two\ndata: lines\n\n"
    b"id: 7\nretry: 100\ndata:three\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [
    SSEEvent(b"one"),
    SSEEvent(b"two\nlines", "note"),
    SSEEvent(b"three"),
    SSEEvent(b"[DONE]"),
]


def feed_all(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events + decoder.close()


def test_sse_whole() -> None:
    assert feed_all([WIRE]) == EVENTS


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_split_at_every_byte_with_any_line_ending(newline: bytes) -> None:
    wire = WIRE.replace(b"\n", newline)
    assert feed_all([wire[i : i + 1] for i in range(len(wire))]) == EVENTS


def test_sse_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    assert feed_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [SSEEvent(b"a\nb")]


def test_sse_one_event_per_piece() -> None:
    pieces = [event + b"\n\n" for event in WIRE.split(b"\n\n") if event]
    assert feed_all(pieces) == EVENTS


def test_sse_one_line_per_piece() -> None:
    assert feed_all([line + b"\n" for line in WIRE.split(b"\n")[:-1]]) == EVENTS


def test_sse_a_whole_data_event_keeps_what_earlier_pieces_began() -> None:
    assert feed_all([b"event: error\n", b"data: x\n\n"]) == [SSEEvent(b"x", "error")]
    assert feed_all([b"data: a\n", b"data: b\n\n"]) == [SSEEvent(b"a\nb")]
    assert feed_all([b'data: {"a"', b":1}\n\n"]) == [SSEEvent(b'{"a":1}')]
    assert feed_all([b"event: error\n", b"data: x\n\n", b"data: y\n\n"]) == [
        SSEEvent(b"x", "error"),
        SSEEvent(b"y"),
    ]


def test_sse_a_lone_cr_inside_a_piece_ends_a_line() -> None:
    assert feed_all([b"data: a\rdata: b\n\n"]) == [SSEEvent(b"a\nb")]


def test_sse_lf_after_a_crlf_split_between_pieces_is_a_blank_line() -> None:
    decoder = SSEDecoder()
    events = [*decoder.feed(b"data: a\r"), *decoder.feed(b"\n"), *decoder.feed(b"\n")]
    assert events == [SSEEvent(b"a")]


def test_sse_comments_only_make_no_event() -> None:
    assert feed_all([b": keepalive\n\n: ping\n\n"]) == []


def test_sse_close_flushes_an_event_missing_its_blank_line() -> None:
    assert feed_all([b"data: [DONE]"]) == [SSEEvent(b"[DONE]")]
    assert feed_all([b"data: x\n"]) == [SSEEvent(b"x")]


def test_sse_data_without_a_space_and_empty_data() -> None:
    assert feed_all([b"data:x\n\ndata\n\n"]) == [SSEEvent(b"x"), SSEEvent(b"")]


# -- decoding replies --------------------------------------------------------------


def completion(**changes: object) -> bytes:
    body: dict[str, object] = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_decode_a_completion_with_extra_fields() -> None:
    response = decode_response(completion(extra={"x": 1}, service_tier="default"), model="m")
    assert (response.id, response.model, response.choices[0].message.content) == ("c1", "up", "hi")
    assert response.service_tier == "default"


def test_decode_tolerates_nulls_and_missing_usage() -> None:
    choices = [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                "function_call": None,
            },
            "finish_reason": "tool_calls",
            "logprobs": {"content": []},
        }
    ]
    body = json.loads(completion(choices=choices))
    del body["usage"], body["id"]
    response = decode_response(json.dumps(body).encode(), model="m")
    [call] = response.choices[0].message.tool_calls  # type: ignore[misc]
    assert call.function.name == "f"  # type: ignore[union-attr]
    assert call.id.startswith("call_")
    assert response.usage.total_tokens == 0
    assert response.id.startswith("chatcmpl-")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b'{"choices": "no"}', completion(choices=[{"message": {"content": 1}}])],
)
def test_decode_refuses_what_is_not_a_completion(body: bytes) -> None:
    with pytest.raises(MalformedUpstreamError) as caught:
        decode_response(body, model="m")
    assert caught.value.status == 502


def test_decode_an_error_body_as_the_upstream_error() -> None:
    body = b'{"error": {"message": "boom", "type": "server_error", "code": 42}}'
    with pytest.raises(UpstreamStatusError) as caught:
        decode_response(body, model="m")
    assert (caught.value.message, caught.value.code) == ("boom", "42")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b'{"error": {"message": "m", "type": "t", "param": "p", "code": "c"}}',
            UpstreamDetail("m", type="t", param="p", code="c"),
        ),
        (b'{"error": "plain"}', UpstreamDetail("plain")),
        (b'{"detail": "fastapi says"}', UpstreamDetail("fastapi says")),
        (b'{"message": "bare"}', UpstreamDetail("bare")),
        (b'{"object": "error", "message": "vllm"}', UpstreamDetail("vllm")),
        (
            b'{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}',
            UpstreamDetail("too long", type="BadRequestError", code="400"),
        ),
        (b'{"detail": [{"loc": ["body"]}]}', None),
        (b"[]", None),
        (b'{"error": {"no": "message"}}', None),
    ],
)
def test_parse_error(body: bytes, detail: UpstreamDetail | None) -> None:
    assert parse_error(body) == detail


def test_parse_error_of_non_json_raises_for_check_to_handle() -> None:
    with pytest.raises(msgspec.DecodeError):
        parse_error(b"<html>")


# -- matrix and factory ------------------------------------------------------------


def test_the_matrix_names_every_field_role_and_part() -> None:
    names = MATRIX.fields()
    assert set(REQUEST_FIELDS) <= names
    assert {f"role.{r}" for r in ROLES} <= names
    assert {f"content.{t}" for t in PART_TYPES} <= names
    assert all(rule.reason for rule in MATRIX.rules)


def test_the_default_matrix() -> None:
    assert MATRIX.unknown is Treatment.SUPPORTED
    assert MATRIX.treatment("session_id") is Treatment.EMULATED
    assert MATRIX.treatment("vlmrun") is Treatment.SUPPORTED
    assert MATRIX.treatment("vlmrun.domain") is Treatment.IGNORED
    assert MATRIX.treatment("vlmrun.metadata") is Treatment.EMULATED
    assert MATRIX.treatment("stream", True) is Treatment.SUPPORTED
    assert MATRIX.treatment("content.input_file") is Treatment.REJECTED
    assert MATRIX.treatment("tools.custom") is Treatment.SUPPORTED


def create(**settings: Any) -> OpenAICompatBackend:
    settings.setdefault("base_url", "http://127.0.0.1:9/v1/")
    backend = OpenAICompatFactory().create(
        "up",
        BackendSettings(plugin="openai-compatible", **settings),
        BackendContext(),
    )
    assert isinstance(backend, OpenAICompatBackend)
    return backend


def test_factory_builds_the_url_and_policy() -> None:
    backend = create(connect_timeout=1.5, read_timeout=2.5, total_timeout=3.5, retries=4)
    assert backend.url == "http://127.0.0.1:9/v1/chat/completions"
    policy = backend.http.policy
    assert (policy.connect_timeout, policy.read_timeout, policy.total_timeout) == (1.5, 2.5, 3.5)
    assert policy.retries == 4
    assert backend.matrix.backend == "up"


def test_factory_reads_the_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-env")
    backend = create(api_key_env="UPSTREAM_KEY")
    assert backend._headers["Authorization"] == "Bearer sk-env"
    assert "Authorization" not in create()._headers


def test_factory_refuses_a_missing_base_url_and_bad_options() -> None:
    with pytest.raises(ValueError, match="base_url"):
        create(base_url=None)
    with pytest.raises(ValueError, match="invalid options"):
        create(options={"modle": "x"})
    with pytest.raises(ValueError, match="invalid options"):
        create(options={"unknown_fields": "sometimes"})


def test_keeps_sessions_follows_session_id_unless_set() -> None:
    assert not create().keeps_sessions
    assert create(matrix={"session_id": "supported"}).keeps_sessions
    assert not create(
        matrix={"session_id": "supported"}, options={"keeps_sessions": False}
    ).keeps_sessions
    assert create(options={"keeps_sessions": True}).keeps_sessions


def test_forwarded_extensions_say_so_not_that_the_translator_keeps_them() -> None:
    matrix = create(matrix={"session_id": "supported", "vlmrun.metadata": "supported"}).matrix
    for field in ("session_id", "vlmrun.metadata"):
        rule = matrix.decide(field)
        assert rule is not None
        assert rule.treatment is Treatment.SUPPORTED
        assert rule.reason == "forwarded to the upstream (set in the configuration)"
    # vlmrun itself was not forwarded: its domain is still dropped.
    assert matrix.treatment("vlmrun.domain") is Treatment.IGNORED


def test_lenient_mode_from_settings() -> None:
    assert create(mode="lenient").matrix.mode == "lenient"
