"""A backend's ``[backends.NAME]`` table applied to its matrix: overrides, mode, API key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec import UNSET
from translator_plugins.echo import EchoFactory
from translator_plugins.ollama import OllamaFactory
from translator_plugins.openai_compat import OpenAICompatFactory
from translator_plugins.vlm_agent import MATRIX as AGENT
from translator_plugins.vlm_agent import VlmAgentFactory

from translator._backend import BackendContext, BackendFactory, BackendSettings
from translator._compat import Equals, Matrix, Mode, Treatment, rejected, supported
from translator._core import Translator
from translator._openai import decode_request
from translator.errors import UnsupportedFieldError
from translator.testing import MockBackend, MockFactory


def request(**fields: Any) -> Any:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return decode_request(json.dumps(body).encode())


def configured(overrides: dict[str, str], matrix: Matrix = AGENT) -> Matrix:
    settings = BackendSettings(plugin="vlm-agent", matrix=overrides)  # type: ignore[arg-type]
    return settings.configure_matrix(matrix, "agent")


# -- overrides keep conditions ----------------------------------------------------


def test_override_of_a_conditional_row_keeps_its_condition() -> None:
    matrix = configured({"n": "ignored"})
    one = request(n=1)
    assert matrix.apply(one).actions == []
    assert one.n == 1
    three = request(n=3)
    report = matrix.apply(three)
    assert three.n is UNSET
    assert report.ignored == ["n"]
    reason = report.actions[0].reason
    assert reason.startswith("not supported by the VLM Run Agents API yet")
    assert reason.endswith("(set in the configuration)")


def test_stream_emulated_override_leaves_stream_false_alone() -> None:
    matrix = configured({"stream": "emulated"})
    whole = request(stream=False)
    assert matrix.apply(whole).actions == []
    assert whole.stream is False
    streamed = matrix.apply(request(stream=True))
    assert streamed.emulated == ["stream"]
    assert streamed.dropped == []
    assert matrix.treatment("stream", True) is Treatment.EMULATED
    assert matrix.treatment("stream", False) is Treatment.SUPPORTED


def test_supported_field_overridden_to_rejected() -> None:
    matrix = configured({"temperature": "rejected"})
    with pytest.raises(UnsupportedFieldError) as info:
        matrix.apply(request(temperature=0))
    error = info.value
    assert (error.status, error.param, error.code) == (400, "temperature", "unsupported_parameter")
    assert error.message == (
        "The agent backend does not support 'temperature': set in the configuration."
    )
    assert matrix.apply(request(temperature=0), mode=Mode.LENIENT).relaxed == ["temperature"]


def test_override_of_a_field_no_rule_names() -> None:
    base = Matrix("x", [supported("n", "one answer")], unknown=Treatment.SUPPORTED)
    matrix = configured({"seed": "ignored", "content.input_audio": "rejected"}, base)
    assert matrix.apply(request(seed=1)).ignored == ["seed"]
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(UnsupportedFieldError) as info:
        matrix.apply(request(messages=[{"role": "user", "content": [audio]}]))
    assert info.value.param == "messages[0].content[0]"


def test_every_conditional_rule_of_a_row_takes_the_override() -> None:
    # function_call: ignored when "none", rejected otherwise; both become ignored.
    matrix = configured({"function_call": "ignored"})
    report = matrix.apply(request(function_call="auto"))
    assert report.ignored == ["function_call"]
    assert report.actions[0].reason.endswith("(set in the configuration)")
    rules = [r for r in matrix.rules if r.field == "function_call"]
    assert [(r.treatment, r.describe_when()) for r in rules] == [
        (Treatment.IGNORED, '= "none"'),
        (Treatment.IGNORED, None),
    ]


def test_overriding_nothing_or_a_row_that_does_not_exist() -> None:
    assert BackendSettings(plugin="vlm-agent").configure_matrix(AGENT, "vlm-agent") is AGENT
    with pytest.raises(ValueError, match=r"tool_choice\.requried"):
        configured({"tool_choice.requried": "rejected"})
    with pytest.raises(ValueError, match="messages"):
        configured({"messages": "ignored"})


def test_the_original_matrix_is_untouched() -> None:
    configured({"n": "ignored", "temperature": "rejected"})
    assert AGENT.treatment("n", 3) is Treatment.REJECTED
    assert AGENT.treatment("temperature", 0) is Treatment.SUPPORTED


async def test_the_translator_emulates_only_streams_it_is_asked_for() -> None:
    mock = MockBackend("emu", matrix=configured({"stream": "emulated"}, _STREAMLESS))
    mock.reply("whole")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with Translator(backends={"emu": mock}) as translator:
        stream = await translator.stream(json.dumps(body).encode(), "emu")
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "whole"
    assert stream.report.emulated == ["stream"]


_STREAMLESS = Matrix(
    "emu",
    [
        rejected("stream", "no streaming", when=Equals(True)),
        supported("stream", "false asks for the whole answer"),
    ],
    unknown=Treatment.SUPPORTED,
)


# -- every factory goes through the settings ---------------------------------------

_FACTORIES: list[tuple[BackendFactory, dict[str, Any]]] = [
    (EchoFactory(), {}),
    (OllamaFactory(), {}),
    (OpenAICompatFactory(), {"base_url": "http://127.0.0.1:9/v1"}),
    (VlmAgentFactory(), {}),
    (MockFactory(), {}),
]


@pytest.mark.parametrize(
    ("factory", "extra"), _FACTORIES, ids=lambda f: getattr(f, "plugin_name", "")
)
async def test_every_factory_applies_name_overrides_and_mode(
    factory: BackendFactory, extra: dict[str, Any]
) -> None:
    overrides = {"seed": Treatment.REJECTED}
    settings = BackendSettings(
        plugin=factory.plugin_name, matrix=overrides, mode=Mode.LENIENT, **extra
    )
    context = BackendContext()
    try:
        backend = factory.create("mine", settings, context)
        assert backend.matrix.backend == "mine"
        assert backend.matrix.mode is Mode.LENIENT
        assert backend.matrix.treatment("seed", 1) is Treatment.REJECTED
        assert backend.matrix.apply(request(seed=1)).relaxed == ["seed"]
        await backend.aclose()
    finally:
        await context.aclose()


# -- the API key ------------------------------------------------------------------


def test_api_key_from_the_table_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPAT_TEST_KEY", "from-env")
    monkeypatch.delenv("COMPAT_TEST_UNSET", raising=False)
    both = BackendSettings(plugin="x", api_key="given", api_key_env="COMPAT_TEST_KEY")
    assert both.resolved_api_key() == "given"
    assert BackendSettings(plugin="x", api_key_env="COMPAT_TEST_KEY").resolved_api_key() == (
        "from-env"
    )
    assert BackendSettings(plugin="x", api_key_env="COMPAT_TEST_UNSET").resolved_api_key() is None
    assert BackendSettings(plugin="x").resolved_api_key() is None


def test_a_rejected_row_made_supported_does_not_keep_the_reason_it_was_refused() -> None:
    matrix = configured({"stop": "supported"})
    rule = matrix.decide("stop", "END")
    assert rule is not None
    assert rule.treatment is Treatment.SUPPORTED
    assert rule.reason.startswith("set in the configuration (by default rejected: ")
    stopped = request(stop="END")
    assert matrix.apply(stopped).actions == []
    assert stopped.stop == "END"
