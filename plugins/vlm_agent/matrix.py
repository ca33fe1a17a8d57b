"""The ``vlm-agent`` compatibility matrix: the spec's "Compatibility Differences".

``max_tokens`` is ignored; ``logprobs``, ``logit_bias``, ``top_logprobs``,
``presence_penalty``, ``frequency_penalty``, ``n``, ``stream`` and ``stop`` are
rejected whenever their value asks for the feature. The values many clients
send as explicit defaults ask for nothing and are accepted: null for any of
them, ``logprobs``/``stream`` false, a penalty of 0 and
``n`` 1. Everything else is decided from what the agent's execute API can take.
Set ``matrix = {stream = "emulated"}`` in a backend's configuration to stream
the whole answer as chunks instead of refusing.
"""

from __future__ import annotations

from typing import Final

from translator.plugin_api import (
    Above,
    Equals,
    Matrix,
    OneOf,
    Rule,
    Treatment,
    emulated,
    ignored,
    rejected,
    supported,
)

__all__ = ["MATRIX", "RULES"]

_NOT_YET: Final = "not supported by the VLM Run Agents API yet"
_NO_TOOLS: Final = "the agent runs its own tools; it cannot call client-defined functions"
_NOTHING: Final = "null asks for nothing"
_FORCED: Final = (
    "a forced call (a named function, or required) is run as a config.json_schema job "
    "and its answer, checked against the schema, returned as the call; with auto or no "
    "tool_choice the agent cannot decide to call a client's tool, so tools are refused"
)
_NO_PENALTY: Final = "null or 0 asks for no penalty, which is how the agent answers"

RULES: Final[tuple[Rule, ...]] = (
    # The spec's table.
    supported("messages", "rendered into the agent's prompt, media into its inputs"),
    supported("model", "mapped to an agent model through the configuration"),
    supported("temperature", "sent in the execution's config"),
    ignored("max_tokens", "accepted, but the full output is returned"),
    supported("logprobs", "false or null asks for none", when=OneOf((False, None))),
    rejected("logprobs", _NOT_YET),
    supported("logit_bias", _NOTHING, when=Equals(None)),
    rejected("logit_bias", _NOT_YET),
    supported("top_logprobs", _NOTHING, when=Equals(None)),
    rejected("top_logprobs", _NOT_YET),
    supported("presence_penalty", _NO_PENALTY, when=OneOf((None, 0))),
    rejected("presence_penalty", _NOT_YET),
    supported("frequency_penalty", _NO_PENALTY, when=OneOf((None, 0))),
    rejected("frequency_penalty", _NOT_YET),
    rejected("n", f"{_NOT_YET}: an execution has one answer", when=Above(1)),
    supported("n", "one answer is what an execution gives"),
    rejected(
        "stream",
        f"{_NOT_YET}; the configuration can emulate it by streaming the whole answer",
        when=Equals(True),
    ),
    supported("stream", "false asks for the whole answer, which is what the agent returns"),
    supported("stop", _NOTHING, when=Equals(None)),
    rejected("stop", _NOT_YET),
    supported("session_id", "sent as metadata.session_id; the agent server keeps the session"),
    supported("vlmrun", "the VLM Run extensions, decided field by field"),
    supported("vlmrun.domain", "sent as the name of the agent to execute"),
    supported("vlmrun.metadata", "sent as the execution's metadata, defaults filled in"),
    # Decided from what the execute API can take.
    ignored("max_completion_tokens", "accepted, but the full output is returned"),
    supported("response_format", "decided by format type"),
    supported("response_format.text", "plain text is the agent's default answer"),
    supported("response_format.json_schema", "sent as the execution's config.json_schema"),
    supported("response_format.json_object", 'sent as config.json_schema {"type": "object"}'),
    *(
        rejected(
            "service_tier", "the agent's tiers are auto, default, flex and priority", when=Equals(t)
        )
        for t in ("scale", "fast")
    ),
    supported("service_tier", "sent as the execution's config.service_tier (null: its default)"),
    supported("tools", "taken with a forced tool_choice only; see tools.function"),
    emulated("tools.function", _FORCED),
    rejected("tools.custom", _NO_TOOLS),
    ignored("tool_choice", "no client-defined tool is ever called", when=Equals("none")),
    supported("tool_choice", "decided by form"),
    ignored("tool_choice.none", "no client-defined tool is ever called"),
    emulated("tool_choice.function", _FORCED),
    emulated("tool_choice.required", _FORCED),
    *(rejected(f"tool_choice.{form}", _NO_TOOLS) for form in ("auto", "custom", "allowed_tools")),
    rejected("functions", _NO_TOOLS),
    ignored("function_call", "no client-defined function is ever called", when=Equals("none")),
    rejected("function_call", _NO_TOOLS),
    ignored("parallel_tool_calls", "no client-defined tool is ever called"),
    supported("audio", _NOTHING, when=Equals(None)),
    rejected("audio", "the agent answers in text, not audio"),
    ignored("modalities", "the agent answers in text; audio output is refused through 'audio'"),
    ignored("prediction", "a latency hint; the agent returns its full output regardless"),
    ignored("reasoning_effort", "the agent plans its own steps; the execute API has no effort"),
    ignored("verbosity", "the agent decides the length of its answer"),
    ignored("seed", "the execute API takes no seed; answers are not reproducible by one"),
    ignored("top_p", "the execute API takes no nucleus sampling setting"),
    ignored("metadata", "OpenAI's stored-completion tags; use vlmrun.metadata.extra instead"),
    ignored(
        "store",
        "the agent server keeps its executions; vlmrun.metadata.allow_retention governs that",
    ),
    ignored("user", "an end-user tag for OpenAI's abuse monitoring; the execute API has none"),
    ignored("safety_identifier", "an end-user tag for OpenAI's abuse monitoring; none here"),
    ignored("prompt_cache_key", "the agent server manages its own caching"),
    ignored("prompt_cache_options", "the agent server manages its own caching"),
    ignored("prompt_cache_retention", "the agent server manages its own caching"),
    supported("moderation", _NOTHING, when=Equals(None)),
    rejected("moderation", "the execute API has no moderation pass"),
    rejected("web_search_options", "web search is one of the agent's own toolsets, set in config"),
    supported("stream_options", "used when streaming is emulated"),
    supported("stream_options.include_usage", "the usage chunk is sent when streaming is emulated"),
    ignored("stream_options.include_obfuscation", "emulated chunks carry no obfuscation padding"),
    # Roles.
    supported("role.system", "its text opens the prompt"),
    supported("role.developer", "its text opens the prompt, as a system message's does"),
    supported("role.user", "a turn of the prompt; the last one is what the agent answers"),
    supported("role.assistant", "an earlier turn of the prompt"),
    supported("role.tool", "the result of an earlier forced call, rendered into the prompt"),
    rejected("role.function", "the agent calls no client-defined functions, so no results"),
    # Content parts.
    supported("content.text", "rendered into the prompt"),
    supported("content.refusal", "an earlier assistant refusal, rendered into the prompt"),
    supported("content.image_url", "sent as an image input, URL or data URI as given"),
    supported("content.image_url.detail", "sent with the image input"),
    supported("content.input_audio", "sent as an audio input, as a data URI"),
    supported("content.audio_url", "sent as an audio input, URL or data URI as given"),
    supported("content.video_url", "sent as a video input, URL or data URI as given"),
    supported("content.file_url", "sent as a file input, URL or data URI as given"),
    supported("content.file", "sent as a file input: data as a data URI, an id as input_file"),
    supported(
        "content.input_file",
        "sent by the agent's file id; a file uploaded here is uploaded to the agent once",
    ),
)

MATRIX: Final = Matrix("vlm-agent", RULES, unknown=Treatment.REJECTED)
