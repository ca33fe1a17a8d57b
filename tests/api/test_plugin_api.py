"""The plugin author's module is a promise: its names are pinned, and a plugin
needs nothing else (the README's example imports it alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import translator._model
import translator.plugin_api as api

ROOT = Path(__file__).resolve().parents[2]

OWN = [
    "ForcedCall",
    "answer_as_call",
    "forced_call",
    "DEFAULT_MAX_BYTES",
    "PART_TYPES",
    "REQUEST_FIELDS",
    "ROLES",
    "SUB_FEATURES",
    "UPSTREAM_AUTH_CODE",
    "Above",
    "Backend",
    "BackendContext",
    "BackendFactory",
    "BackendSettings",
    "BoundClient",
    "ChunkStream",
    "Equals",
    "FetchRefusedError",
    "FileSource",
    "HttpClient",
    "HttpPolicy",
    "InvalidRequestError",
    "MalformedUpstreamError",
    "Matrix",
    "MediaFetcher",
    "MessageParser",
    "Mode",
    "NeedsIOError",
    "OneOf",
    "Reply",
    "Rule",
    "SSEDecoder",
    "SSEEvent",
    "SharedCache",
    "TranslatorError",
    "Treatment",
    "UnsupportedFieldError",
    "UpstreamDetail",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "When",
    "caller_scope",
    "chunks_from_response",
    "convert_options",
    "emulated",
    "encode_request",
    "estimate_tokens",
    "hookimpl",
    "ignored",
    "is_file_id",
    "new_completion_id",
    "now",
    "rejected",
    "split_data_uri",
    "supported",
]
"""The seam, the matrix, helpers, errors and HTTP: what the module adds to the model."""

MODEL = [
    "AllowedTools",
    "AllowedToolsChoice",
    "AssistantAudio",
    "AssistantMessage",
    "AssistantPart",
    "AudioOutput",
    "AudioURL",
    "AudioURLPart",
    "CacheBreakpoint",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CustomCall",
    "CustomDefinition",
    "CustomFormatGrammar",
    "CustomFormatText",
    "CustomTool",
    "CustomToolCall",
    "Delta",
    "DeveloperMessage",
    "Environment",
    "FileData",
    "FilePart",
    "FileURL",
    "FileURLPart",
    "FinishReason",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionCallOption",
    "FunctionDefinition",
    "FunctionMessage",
    "FunctionName",
    "FunctionTool",
    "FunctionToolCall",
    "Grammar",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InputAudioPart",
    "InputFilePart",
    "JSONObjectFormat",
    "JSONSchema",
    "JSONSchemaFormat",
    "Message",
    "Moderation",
    "ModerationPolicy",
    "ModerationPolicyMode",
    "NamedCustomChoice",
    "NamedFunctionChoice",
    "Part",
    "Prediction",
    "PromptCacheOptions",
    "PromptTokensDetails",
    "RefusalPart",
    "RequestMetadata",
    "ResponseFormat",
    "ResponseMessage",
    "ResponseStruct",
    "StreamOptions",
    "SystemMessage",
    "TextFormat",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolMessage",
    "Usage",
    "UserLocation",
    "UserLocationApproximate",
    "UserMessage",
    "UserPart",
    "VideoURL",
    "VideoURLPart",
    "VlmRun",
    "VoiceID",
    "WebSearchOptions",
    "set_unknown_fields",
    "tag_of",
    "unknown_fields",
]
"""The canonical model's names a backend reads requests and builds answers with."""


def test_the_plugin_api_is_pinned() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    assert set(api.__all__) == set(OWN) | set(MODEL)
    assert set(MODEL) <= set(translator._model.__all__)
    for name in api.__all__:
        assert getattr(api, name) is not None, name


def test_it_exports_nothing_public_it_does_not_list() -> None:
    public = {n for n, v in vars(api).items() if not n.startswith("_") and n != "annotations"}
    assert public == set(api.__all__)


def test_settings_helpers_build_what_the_factories_used_to_copy() -> None:
    settings = api.BackendSettings(
        plugin="p", api_key="k", retries=5, read_timeout=7.0, max_reply_bytes=10
    )
    policy = settings.http_policy(backoff_base=0.5)
    assert (policy.retries, policy.read_timeout, policy.max_reply_bytes) == (5, 7.0, 10)
    assert policy.backoff_base == 0.5
    assert settings.auth_headers() == {"Authorization": "Bearer k"}
    assert api.BackendSettings(plugin="p").auth_headers() == {}


def test_options_are_typed_with_an_error_naming_the_backend() -> None:
    import msgspec
    import pytest

    class Options(msgspec.Struct, forbid_unknown_fields=True):
        depth: int = 1

    assert api.BackendSettings(plugin="p", options={"depth": 3}).options_as(Options, "b").depth == 3
    with pytest.raises(ValueError, match=r"^backend 'b': invalid options: .*depth"):
        api.BackendSettings(plugin="p", options={"depth": "x"}).options_as(Options, "b")


PROBE = r"""
import asyncio, builtins, sys

import translator.plugin_api  # loads what it re-exports, before the gate closes

real_import = builtins.__import__
refused = []

def gate(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith("translator_shout") and level == 0:
        inside = name == "translator" or name.startswith("translator.")
        if inside and name != "translator.plugin_api":
            refused.append(name)
            raise ImportError(f"a plugin may import only translator.plugin_api, not {name}")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = gate
sys.path.insert(0, sys.argv[1])
import translator_shout

factories = []
translator_shout.register_backends(register=factories.append)
(factory,) = factories
backend = factory.create("shout", translator.plugin_api.BackendSettings(plugin="shout"), None)
request = translator.plugin_api.ChatRequest(
    [translator.plugin_api.UserMessage("hello there")], "m"
)
answer = asyncio.run(backend.complete(request))
print(answer.choices[0].message.content, refused)
"""


def test_the_readme_example_plugin_imports_only_the_plugin_api() -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE), str(ROOT / "tests" / "plugin_dist")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "HELLO THERE []"
