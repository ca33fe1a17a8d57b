"""Matrices as JSON, a terminal table and reStructuredText, and the built-in ones.

These are what ``translator matrix --format json|table|rst`` prints, and the
README's compatibility section is :func:`render_rst` of :func:`builtin_matrices`.
They belong to the command line, above the registry: the matrices themselves
(:mod:`translator._compat`) know nothing of how they are shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from ._backend import BackendContext, BackendSettings
from ._compat import Matrix, Rule, Treatment
from ._plugins import backend_factories, build_backends, get_plugin_manager

__all__ = ["builtin_matrices", "matrix_to_json", "render_rst", "render_table"]

_ORDER = (Treatment.SUPPORTED, Treatment.EMULATED, Treatment.IGNORED, Treatment.REJECTED)
_UNKNOWN = {
    Treatment.SUPPORTED: "passed on to the backend",
    Treatment.IGNORED: "dropped and reported",
    Treatment.REJECTED: 'refused with "Unrecognized request argument supplied"',
}


class _RuleOut(msgspec.Struct):
    field: str
    treatment: str
    when: str | None
    reason: str


class _BackendOut(msgspec.Struct):
    name: str
    unknown_fields: str
    rules: list[_RuleOut]


class _MatricesOut(msgspec.Struct):
    backends: list[_BackendOut]


_encoder = msgspec.json.Encoder()
_PLACEHOLDER_URL = "http://127.0.0.1:1/v1"
_REFERENCE_END = re.compile(r"_(?=\W|$)")


def matrix_to_json(matrices: Sequence[Matrix]) -> bytes:
    """``{"backends": [{"name", "unknown_fields", "rules": [{"field", "treatment", "when",
    "reason"}]}]}``, rules in the order each matrix declares them (``when`` null for any value).
    """
    out = _MatricesOut(
        [
            _BackendOut(
                m.backend,
                m.unknown.value,
                [
                    _RuleOut(r.field, r.treatment.value, r.describe_when(), r.reason)
                    for r in m.rules
                ],
            )
            for m in matrices
        ]
    )
    return _encoder.encode(out)


def render_table(matrices: Sequence[Matrix]) -> str:
    """Plain-text columns for a terminal, one block per backend."""
    blocks: list[str] = []
    for m in matrices:
        rows = [("FIELD", "TREATMENT", "WHEN", "REASON")]
        rows += [(r.field, r.treatment.value, r.describe_when() or "", r.reason) for r in m.rules]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{m.backend} (fields no rule names: {m.unknown.value})"]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_rst(matrices: Sequence[Matrix]) -> str:
    """One section and table per backend, grouped by treatment, fields sharing a reason
    on one row (the style of the VLM agents' "Compatibility Differences")."""
    sections: list[str] = []
    for m in matrices:
        title = f"``{m.backend}``"
        lines = [
            title,
            "-" * len(title),
            "",
            f"Fields no rule names: {m.unknown.value} ({_UNKNOWN[m.unknown]}).",
        ]
        if not m.rules:
            sections.append("\n".join([*lines, "", "No field has a rule of its own."]))
            continue
        lines += [
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 12 40 48",
            "",
            "   * - Treatment",
            "     - Fields",
            "     - Reason",
        ]
        previous: Treatment | None = None
        for treatment, fields, reason in _groups(m.rules):
            shown = "" if treatment is previous else f" {treatment.value}"
            previous = treatment
            lines += [
                f"   * -{shown}",
                f"     - {', '.join(fields)}",
                f"     - {_escape(reason)}",
            ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _groups(rules: Sequence[Rule]) -> list[tuple[Treatment, list[str], str]]:
    """Rules by treatment, then by reason in first-seen order, as shown fields."""
    groups: dict[tuple[Treatment, str], list[str]] = {}
    for rule in rules:
        shown = f"``{rule.field}``"
        if rule.when is not None:
            shown += f" {_escape(rule.describe_when() or '')}"
        groups.setdefault((rule.treatment, rule.reason), []).append(shown)
    return [
        (treatment, fields, reason)
        for order in _ORDER
        for (treatment, reason), fields in groups.items()
        if treatment is order
    ]


def _escape(text: str) -> str:
    """``text`` safe inside a table cell: inline markup characters escaped."""
    for char in ("\\", "*", "`", "|"):
        text = text.replace(char, "\\" + char)
    return _REFERENCE_END.sub(r"\\_", text)


def builtin_matrices() -> list[Matrix]:
    """The matrix of every built-in backend (default settings), sorted by name.

    Loads the built-in plugins only (no installed entry points); creating a
    backend does no I/O. A plugin that cannot be built without an address
    (``openai-compatible``) is given a loopback placeholder, never contacted.
    """
    pm = get_plugin_manager(entry_points=False)
    context = BackendContext()
    found: list[Matrix] = []
    for name in sorted(backend_factories(pm)):
        try:
            built = build_backends({name: BackendSettings(plugin=name)}, pm, context)
        except ValueError:
            settings = BackendSettings(plugin=name, base_url=_PLACEHOLDER_URL)
            built = build_backends({name: settings}, pm, context)
        found.append(built[name].matrix)
    return found
