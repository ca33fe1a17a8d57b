"""The ``openai-compatible`` matrix: everything in the OpenAI API passes through,
except what the canonical response cannot carry back; the VLM agents extensions
are kept by the translator unless the configuration forwards them."""

from __future__ import annotations

from translator.plugin_api import (
    REQUEST_FIELDS,
    ROLES,
    Matrix,
    Rule,
    Treatment,
    VlmRun,
    emulated,
    ignored,
    rejected,
    supported,
)

__all__ = ["MATRIX", "PLUGIN", "VLMRUN_FIELDS", "fitted"]


PLUGIN = "openai-compatible"

_NOT_CARRIED = {
    "logprobs": "log probabilities are not carried back in the canonical response",
    "top_logprobs": "log probabilities are not carried back in the canonical response",
    "audio": "audio output is not carried back in the canonical response",
    "modalities": "only text output is carried back; text is always produced",
}
_EXTENSION_PARTS = ("input_file", "video_url", "audio_url", "file_url")
_KEPT = "the translator keeps the conversation"
_SESSION_ROW = emulated("session_id", _KEPT)
_VLMRUN_ROW = supported("vlmrun", "decided part by part; 'supported' forwards it whole")
_VLMRUN_PARTS = (
    ignored("vlmrun.domain", "a VLM agents extension; forward vlmrun with 'supported'"),
    emulated("vlmrun.metadata", f"{_KEPT} and honours allow_retention"),
)
_OWN_ROWS = {"session_id": _SESSION_ROW, "vlmrun": _VLMRUN_ROW}
VLMRUN_FIELDS = VlmRun.__struct_fields__

_ROWS: list[Rule] = [
    *(
        _OWN_ROWS[f]
        if f in _OWN_ROWS
        else ignored(f, _NOT_CARRIED[f])
        if f in _NOT_CARRIED
        else supported(f, "passed through")
        for f in REQUEST_FIELDS
    ),
    *_VLMRUN_PARTS,
    *(supported(f"role.{r}", "passed through") for r in ROLES),
    *(
        supported(f"content.{t}", "passed through")
        for t in ("text", "image_url", "input_audio", "file", "refusal")
    ),
    *(
        rejected(
            f"content.{t}", "not in the OpenAI API; set it supported for an upstream that takes it"
        )
        for t in _EXTENSION_PARTS
        if t != "input_file"
    ),
    rejected(
        "content.input_file",
        "not in the OpenAI API; set it supported for an upstream that takes it "
        "(a file uploaded here is then sent inline, as a file part)",
    ),
]
MATRIX = Matrix(PLUGIN, _ROWS, unknown=Treatment.SUPPORTED)
"""The default matrix; the configuration's ``matrix`` table overrides rows of it."""


def fitted(matrix: Matrix, *, keeps_sessions: bool) -> Matrix:
    """``matrix`` as it holds for a backend that does, or does not, keep sessions upstream.

    The default ``vlmrun.<part>`` rows give way to a configured ``vlmrun`` row
    (``vlmrun = "supported"`` forwards it whole). When the upstream keeps the
    sessions, the translator keeps no conversation, so the default emulated
    ``session_id`` and ``vlmrun.metadata`` rows become ignored.
    """
    rules = [_reworded(r) for r in matrix.rules]
    if _VLMRUN_ROW not in rules:
        rules = [r for r in rules if r not in _VLMRUN_PARTS]
    if keeps_sessions:
        kept = (_SESSION_ROW, _VLMRUN_PARTS[1])
        note = "the upstream keeps the session and is not sent this; forward it with 'supported'"
        rules = [ignored(r.field, note) if r in kept else r for r in rules]
    if rules == list(matrix.rules):
        return matrix
    return Matrix(matrix.backend, rules, unknown=matrix.unknown, mode=matrix.mode)


_DEFAULT_ROWS = {r.field: r for r in (_SESSION_ROW, *_VLMRUN_PARTS)}
_SAYS = {
    Treatment.SUPPORTED: "forwarded to the upstream",
    Treatment.IGNORED: "dropped, not sent",
    Treatment.REJECTED: "refused",
}


def _reworded(rule: Rule) -> Rule:
    """A default row given another treatment no longer says the default's reason."""
    default = _DEFAULT_ROWS.get(rule.field)
    says = _SAYS.get(rule.treatment)
    if default is None or says is None or rule.treatment is default.treatment:
        return rule
    return Rule(rule.field, rule.treatment, f"{says} (set in the configuration)", rule.when)
