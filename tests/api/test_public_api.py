"""The curated public API: a sorted ``__all__`` at the package root, pinned here.

Adding or removing a public name is a decision; this test makes it a visible one.
"""

from __future__ import annotations

import inspect
import json
import types

import pytest

import translator
import translator._model
import translator._openai
import translator.errors
import translator.stores
from translator import errors

PUBLIC = [
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendSettings",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Completion",
    "Config",
    "DiskFileStore",
    "FileObject",
    "FileStore",
    "InvalidRequestError",
    "Matrix",
    "MemoryFileStore",
    "MemorySessionStore",
    "Mode",
    "ModelNotFoundError",
    "Report",
    "Rule",
    "SessionStore",
    "Stream",
    "Translator",
    "TranslatorError",
    "Treatment",
    "UnsupportedFieldError",
    "UpstreamError",
    "Usage",
    "create_app",
    "decode_request",
    "encode_request",
    "encode_response",
    "get_plugin_manager",
    "hookimpl",
    "load_config",
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
    assert translator._openai.__all__ == CODEC
    for name in CODEC:
        assert getattr(translator._openai, name) is not None


def test_the_model_errors_and_stores_export_sorted_names_that_exist() -> None:
    for module in (translator._model, translator.errors, translator.stores):
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
    assert translator.decode_request is translator._openai.decode_request


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (errors.TranslatorError("x"), 500, "server_error", None),
        (errors.InvalidRequestError("x"), 400, "invalid_request_error", None),
        (errors.UnsupportedFieldError("x"), 400, "invalid_request_error", "unsupported_parameter"),
        (errors.FetchRefusedError("x"), 400, "invalid_request_error", "invalid_url"),
        (errors.NeedsIOError("x"), 400, "invalid_request_error", "requires_io"),
        (errors.AuthenticationError("x"), 401, "authentication_error", "invalid_api_key"),
        (errors.PermissionDeniedError("x"), 403, "permission_error", None),
        (errors.NotFoundError("x"), 404, "not_found_error", None),
        (errors.ModelNotFoundError("x"), 404, "invalid_request_error", "model_not_found"),
        (errors.PayloadTooLargeError("x"), 413, "invalid_request_error", "payload_too_large"),
        (errors.RateLimitError("x"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.StoreUnavailableError("x"), 503, "server_error", "store_unavailable"),
        (errors.UpstreamError("x"), 502, "upstream_error", None),
        (errors.UpstreamUnavailableError("x"), 502, "upstream_error", "upstream_unavailable"),
        (errors.UpstreamTimeoutError("x"), 504, "upstream_error", "upstream_timeout"),
        (errors.MalformedUpstreamError("x"), 502, "upstream_error", "upstream_malformed"),
        (errors.UpstreamStatusError("x", status=429), 429, "rate_limit_error", None),
        (errors.UpstreamStatusError("x", status=404), 404, "not_found_error", None),
        (errors.UpstreamStatusError("x", status=418), 418, "invalid_request_error", None),
        (errors.UpstreamStatusError("x", status=500), 500, "upstream_error", None),
        (
            errors.UpstreamStatusError("x", status=400, error_type="custom", code="c"),
            400,
            "custom",
            "c",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_error_knows_its_status_and_openai_body(
    error: errors.TranslatorError, status: int, kind: str, code: str | None
) -> None:
    assert error.status == status
    body = error.to_openai()
    assert body == {"error": {"message": "x", "type": kind, "param": None, "code": code}}
    assert json.loads(error.to_json()) == body
    assert list(json.loads(error.to_json())["error"]) == ["message", "type", "param", "code"]


def test_param_code_and_status_can_be_given() -> None:
    error = errors.InvalidRequestError("bad", param="messages[0]", code="c", status=422)
    assert error.status == 422
    assert error.to_openai()["error"] == {
        "message": "bad",
        "type": "invalid_request_error",
        "param": "messages[0]",
        "code": "c",
    }
    assert errors.InvalidRequestError.status == 400, "a given status stays on the instance"
    assert "param='messages[0]'" in repr(error)


def test_the_timeout_error_is_a_builtin_timeout_and_upstream_errors_name_their_backend() -> None:
    error = errors.UpstreamTimeoutError("slow", backend="ollama")
    assert isinstance(error, TimeoutError)
    assert error.backend == "ollama"


def test_the_module_docstring_draws_every_error() -> None:
    tree = errors.__doc__ or ""
    for name in errors.__all__:
        assert f" {name} " in tree, name
