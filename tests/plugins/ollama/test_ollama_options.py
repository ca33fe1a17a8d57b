"""The ollama backend's ``options`` table: what it takes, and a clear error for anything else."""

from __future__ import annotations

from typing import Any

import pytest
from translator_plugins.ollama import OllamaFactory
from translator_plugins.ollama.options import FetchOptions, Options, parse_options

from translator._backend import BackendContext, BackendSettings
from translator._fetch import DEFAULT_MAX_BYTES
from translator.config import parse_config


def test_the_documented_options_are_read() -> None:
    config = parse_config(
        '[backends.local]\nplugin = "ollama"\n'
        "[backends.local.options]\n"
        'models = { "gpt-4o" = "llava:13b" }\n'
        'fetch = { allow = ["10.0.0.0/8"], timeout = 5 }\n'
    )
    options = parse_options(config.backends["local"].options)
    assert options == Options(
        models={"gpt-4o": "llava:13b"},
        fetch=FetchOptions(allow=["10.0.0.0/8"], timeout=5.0),
    )
    assert options.fetch is not None
    assert options.fetch.max_bytes == DEFAULT_MAX_BYTES
    assert parse_options({}) == Options()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"bogus": 1}, "`bogus`"),
        ({"modles": {"a": "b"}}, "`modles`"),
        ({"fetch": {"alow": ["10.0.0.0/8"]}}, "`alow` - at `$.fetch`"),
        ({"models": "llava"}, "`$.models`"),
        ({"fetch": {"max_bytes": 0}}, "`$.fetch.max_bytes`"),
    ],
)
def test_anything_else_is_an_error_naming_the_key(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="invalid options") as caught:
        parse_options(options, backend="local")
    message = str(caught.value)
    assert message.startswith("backend 'local': ")
    assert named in message


def test_the_factory_refuses_an_unknown_option() -> None:
    settings = BackendSettings(plugin="ollama", options={"bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        OllamaFactory().create("local", settings, BackendContext())
