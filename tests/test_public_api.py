"""The curated public API: a sorted ``__all__`` at the package root, pinned here.

Adding or removing a public name is a decision; this test makes it a visible one.
"""

from __future__ import annotations

import inspect
import types

import translator
import translator.errors
import translator.model
import translator.openai

PUBLIC = [
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendSettings",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Completion",
    "InvalidRequestError",
    "Matrix",
    "Mode",
    "ModelNotFoundError",
    "Report",
    "Rule",
    "Stream",
    "Translator",
    "TranslatorError",
    "Treatment",
    "UnsupportedFieldError",
    "UpstreamError",
    "Usage",
    "decode_request",
    "encode_request",
    "encode_response",
    "get_plugin_manager",
    "hookimpl",
]

CODEC = [
    "SSE_DONE",
    "decode_error",
    "decode_request",
    "encode_chunk",
    "encode_request",
    "encode_response",
    "new_completion_id",
    "now",
    "sse_frame",
]


def test_all_is_sorted_and_pinned() -> None:
    assert translator.__all__ == sorted(translator.__all__)
    assert translator.__all__ == PUBLIC


def test_every_exported_name_resolves() -> None:
    for name in translator.__all__:
        assert getattr(translator, name) is not None, name


def test_every_public_member_defined_in_the_package_is_exported() -> None:
    for name, member in vars(translator).items():
        if name.startswith("_") or isinstance(member, types.ModuleType):
            continue
        module = getattr(member, "__module__", "") or ""
        if module == "translator" or module.startswith("translator."):
            assert name in translator.__all__, f"{name} is public but not in __all__"


def test_the_codec_api_is_pinned() -> None:
    assert translator.openai.__all__ == CODEC
    for name in CODEC:
        assert getattr(translator.openai, name) is not None


def test_the_model_and_errors_export_sorted_names_that_exist() -> None:
    for module in (translator.model, translator.errors):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_error_descends_from_translator_error_and_has_a_status() -> None:
    for name in translator.errors.__all__:
        error = getattr(translator.errors, name)
        assert inspect.isclass(error)
        assert issubclass(error, translator.TranslatorError)
        assert isinstance(error.status, int)
        assert 400 <= error.status < 600
    assert translator.InvalidRequestError.status == 400
    assert translator.decode_request is translator.openai.decode_request
