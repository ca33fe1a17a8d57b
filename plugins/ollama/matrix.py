"""How the ``ollama`` backend treats every OpenAI request field, as data.

Values many clients send as explicit defaults ask for nothing and are accepted
(null for any nullable field, ``logprobs`` false, ``n`` 1);
a value that asks for what Ollama cannot do (``n`` above 1, ``logprobs`` true)
is refused.
"""

from __future__ import annotations

from translator.plugin_api import (
    Above,
    Equals,
    Matrix,
    OneOf,
    Treatment,
    emulated,
    ignored,
    rejected,
    supported,
)

__all__ = ["MATRIX", "ROWS"]

_TEXT_AND_IMAGES = "Ollama's chat API takes text and images only"
_NOTHING = "null asks for nothing"

ROWS = (
    # top-level fields
    supported("messages", "sent as Ollama messages, parts flattened into content and images"),
    supported("model", "mapped through options.models, else sent as it is"),
    supported("audio", _NOTHING, when=Equals(None)),
    rejected("audio", "Ollama answers in text only"),
    supported("frequency_penalty", "sent as options.frequency_penalty"),
    rejected("function_call", "legacy function calling is not translated; use tool_choice"),
    rejected("functions", "legacy function calling is not translated; use tools"),
    supported("logit_bias", _NOTHING, when=Equals(None)),
    rejected("logit_bias", "Ollama has no logit bias"),
    supported("logprobs", "false or null asks for none", when=OneOf((False, None))),
    rejected("logprobs", "log probabilities are not translated from Ollama"),
    supported("max_completion_tokens", "sent as options.num_predict"),
    supported("max_tokens", "sent as options.num_predict"),
    ignored("metadata", "OpenAI's stored-completion tags; Ollama keeps nothing"),
    ignored("modalities", "Ollama answers in text only (audio output is refused via audio)"),
    supported("moderation", _NOTHING, when=Equals(None)),
    rejected("moderation", "Ollama runs no moderation model"),
    rejected("n", "Ollama gives one choice per request", when=Above(1)),
    supported("n", "one choice (1 or null) is what Ollama gives"),
    ignored("parallel_tool_calls", "Ollama decides how many tools to call"),
    ignored("prediction", "a latency hint; Ollama has no predicted outputs"),
    supported("presence_penalty", "sent as options.presence_penalty"),
    ignored("prompt_cache_key", "Ollama caches prompts on its own"),
    ignored("prompt_cache_options", "Ollama caches prompts on its own"),
    ignored("prompt_cache_retention", "Ollama caches prompts on its own"),
    ignored("reasoning_effort", "thinking levels are model-specific in Ollama; not mapped"),
    supported("response_format", "sent as format"),
    ignored("safety_identifier", "an abuse-tracking id; Ollama keeps none"),
    supported("seed", "sent as options.seed"),
    ignored("service_tier", "Ollama has one service tier"),
    supported("stop", "sent as options.stop (a string becomes a list)"),
    ignored("store", "Ollama stores no completions"),
    supported("stream", "Ollama's NDJSON stream, translated line by line"),
    supported("stream_options", "see its options"),
    supported("temperature", "sent as options.temperature"),
    supported("tool_choice", "see its forms"),
    supported("tools", "passed through to Ollama"),
    supported("top_logprobs", _NOTHING, when=Equals(None)),
    rejected("top_logprobs", "log probabilities are not translated from Ollama"),
    supported("top_p", "sent as options.top_p"),
    ignored("user", "an end-user id; Ollama keeps none"),
    ignored("verbosity", "Ollama has no verbosity control"),
    rejected("web_search_options", "Ollama's chat API has no web search"),
    emulated("session_id", "the translator keeps the conversation"),
    supported("vlmrun", "see its parts"),
    # sub-features
    ignored("vlmrun.domain", "Ollama serves general models, not VLM Run domains"),
    emulated(
        "vlmrun.metadata", "the translator keeps the conversation and honours allow_retention"
    ),
    supported("response_format.text", "Ollama's default"),
    supported("response_format.json_object", 'sent as format "json"'),
    supported("response_format.json_schema", "sent as format with the schema"),
    supported("tool_choice.auto", "Ollama's default"),
    supported("tool_choice.none", "the tools are left out of the request"),
    emulated(
        "tool_choice.required",
        "Ollama cannot be made to call a tool: its answer is held to a schema choosing one "
        "of the tools, checked against it, and comes back as that call",
    ),
    emulated(
        "tool_choice.function",
        "Ollama cannot be made to call a given tool: its answer is held to the tool's "
        "parameters (format), checked against them, and comes back as the call",
    ),
    rejected("tool_choice.custom", "Ollama has no custom tools"),
    rejected("tool_choice.allowed_tools", "Ollama cannot restrict tools per request"),
    supported("tools.function", "passed through to Ollama"),
    rejected("tools.custom", "Ollama has function tools only"),
    supported("stream_options.include_usage", "usage from the last line's token counts"),
    ignored("stream_options.include_obfuscation", "no obfuscation padding is added"),
    supported("role.system", "sent as a system message"),
    supported("role.developer", "sent as a system message"),
    supported("role.user", "sent as a user message"),
    supported("role.assistant", "sent with its tool calls, arguments as JSON objects"),
    supported("role.tool", "sent with tool_call_id and the tool's name"),
    supported("role.function", "sent as a tool result named by the function"),
    supported("content.text", "flattened into the message's content"),
    supported("content.image_url", "sent as base64 in images (URLs fetched, guarded)"),
    ignored("content.image_url.detail", "Ollama has no image detail setting"),
    supported("content.refusal", "flattened into the assistant's content"),
    rejected("content.input_audio", _TEXT_AND_IMAGES),
    rejected("content.file", _TEXT_AND_IMAGES),
    rejected("content.input_file", _TEXT_AND_IMAGES),
    rejected("content.video_url", _TEXT_AND_IMAGES),
    rejected("content.audio_url", _TEXT_AND_IMAGES),
    rejected("content.file_url", _TEXT_AND_IMAGES),
)

MATRIX = Matrix("ollama", ROWS, unknown=Treatment.REJECTED)
