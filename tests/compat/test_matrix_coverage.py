"""Every built-in backend's matrix names every field, role and part type the OpenAI SDK knows.

The lists are read from the installed ``openai`` SDK's own type definitions, so
a field a new SDK release adds fails here the day it appears.
"""

from __future__ import annotations

import typing

import pytest
from openai.types.chat import (
    ChatCompletionContentPartParam,
    ChatCompletionContentPartRefusalParam,
    ChatCompletionMessageParam,
)
from openai.types.chat import completion_create_params as sdk_params

from translator._compat import PART_TYPES, REQUEST_FIELDS, ROLES, SUB_FEATURES, Matrix, Treatment
from translator._matrices import builtin_matrices

VLM_PART_TYPES = ("input_file", "video_url", "audio_url", "file_url")


def _literal(typed_dict: object, key: str) -> tuple[str, ...]:
    hint = typing.get_type_hints(typed_dict)[key]
    assert typing.get_origin(hint) is typing.Literal, f"{typed_dict}.{key} is {hint}"
    return typing.get_args(hint)


SDK_FIELDS = sorted(
    set(typing.get_type_hints(sdk_params.CompletionCreateParamsBase))
    | set(typing.get_type_hints(sdk_params.CompletionCreateParamsStreaming))
)
SDK_ROLES = sorted(
    {r for td in typing.get_args(ChatCompletionMessageParam) for r in _literal(td, "role")}
)
SDK_PART_TYPES = sorted(
    {t for td in typing.get_args(ChatCompletionContentPartParam) for t in _literal(td, "type")}
    | set(_literal(ChatCompletionContentPartRefusalParam, "type"))
)
PART_ROWS = sorted({*SDK_PART_TYPES, *VLM_PART_TYPES})

MATRICES = {m.backend: m for m in builtin_matrices()}
BACKENDS = sorted(MATRICES)


def test_the_sdk_lists_were_read() -> None:
    assert {"messages", "model", "n", "stream", "stream_options", "max_tokens"} <= set(SDK_FIELDS)
    assert {"system", "user", "assistant", "tool"} <= set(SDK_ROLES)
    assert {"text", "image_url", "refusal"} <= set(SDK_PART_TYPES)


def test_the_built_in_backends_are_all_here() -> None:
    assert {"echo", "ollama", "openai-compatible", "vlm-agent"} <= set(BACKENDS)


def test_the_canonical_model_knows_what_the_sdk_sends() -> None:
    assert set(SDK_FIELDS) <= set(REQUEST_FIELDS)
    assert set(SDK_ROLES) <= set(ROLES)
    assert set(PART_ROWS) <= set(PART_TYPES)


def _missing(matrix: Matrix, wanted: typing.Iterable[str]) -> list[str]:
    named = matrix.fields()
    return [f for f in wanted if f not in named]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_sdk_field_is_named(backend: str) -> None:
    missing = _missing(MATRICES[backend], SDK_FIELDS)
    assert not missing, f"{backend} names no rule for these request fields: {missing}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_canonical_field_is_named(backend: str) -> None:
    missing = _missing(MATRICES[backend], REQUEST_FIELDS)
    assert not missing, f"{backend} names no rule for these request fields: {missing}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_role_is_named(backend: str) -> None:
    missing = _missing(MATRICES[backend], [f"role.{r}" for r in SDK_ROLES])
    assert not missing, f"{backend} names no rule for these roles: {missing}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_part_type_is_named(backend: str) -> None:
    missing = _missing(MATRICES[backend], [f"content.{t}" for t in PART_ROWS])
    assert not missing, f"{backend} names no rule for these content part types: {missing}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_rule_has_a_one_line_reason(backend: str) -> None:
    bad = [r.field for r in MATRICES[backend].rules if not r.reason.strip() or "\n" in r.reason]
    assert not bad, f"{backend} rules without a one-line reason: {bad}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_sub_feature_row_exists(backend: str) -> None:
    known = set(SUB_FEATURES)
    typos = [r.field for r in MATRICES[backend].rules if "." in r.field and r.field not in known]
    assert not typos, f"{backend} names sub-features that do not exist: {typos}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_rule_is_shadowed(backend: str) -> None:
    seen: set[str] = set()
    shadowed = []
    for rule in MATRICES[backend].rules:
        if rule.when is None:
            if rule.field in seen:
                shadowed.append(rule.field)
            seen.add(rule.field)
    assert not shadowed, f"{backend} has two rules for any value of: {shadowed}"


# -- the VLM agent's matrix is the spec's "Compatibility Differences" ------------


def test_vlm_agent_matrix_is_the_specs_table() -> None:
    matrix = MATRICES["vlm-agent"]
    max_tokens = matrix.decide("max_tokens", 100)
    assert max_tokens is not None
    assert max_tokens.treatment is Treatment.IGNORED
    assert "full output" in max_tokens.reason
    for field, value in [
        ("logprobs", True),
        ("logit_bias", {"1": 1}),
        ("top_logprobs", 2),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("n", 2),
        ("stream", True),
        ("stop", ["x"]),
    ]:
        assert matrix.treatment(field, value) is Treatment.REJECTED, field
    assert matrix.treatment("n", 1) is not Treatment.REJECTED
    for field in [
        "model",
        "messages",
        "temperature",
        "content.input_file",
        "session_id",
        "vlmrun.domain",
        "vlmrun.metadata",
    ]:
        assert matrix.treatment(field) is Treatment.SUPPORTED, field
