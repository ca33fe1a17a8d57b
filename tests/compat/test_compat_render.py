"""Matrices rendered as JSON, a terminal table and reStructuredText."""

from __future__ import annotations

import io

import docutils.core
import msgspec

from translator._compat import (
    Above,
    Equals,
    Matrix,
    Treatment,
    emulated,
    ignored,
    rejected,
    supported,
)
from translator._matrices import builtin_matrices, matrix_to_json, render_rst, render_table
from translator._plugins import backend_factories, get_plugin_manager

AGENT = Matrix(
    "agent",
    [
        supported("model", "the agent's name"),
        ignored("max_tokens", "accepted, but the full output is returned"),
        supported("n", "one answer"),
        rejected("n", "one answer per execution", when=Above(1)),
        rejected("logprobs", "not supported yet"),
        rejected("stop", "not supported yet"),
        emulated("stream", "the whole answer, streamed as chunks", when=Equals(True)),
        supported("content.input_file", "sent by file id"),
    ],
)
LOCAL = Matrix("local", [supported("model", "sent as it is")], unknown=Treatment.IGNORED)


def rst_warnings(text: str) -> str:
    stream = io.StringIO()
    docutils.core.publish_doctree(
        text, settings_overrides={"warning_stream": stream, "report_level": 1, "halt_level": 5}
    )
    return stream.getvalue()


# -- JSON -----------------------------------------------------------------------


def test_json_has_exactly_the_documented_shape() -> None:
    data = msgspec.json.decode(matrix_to_json([AGENT, LOCAL]))
    assert list(data) == ["backends"]
    agent, local = data["backends"]
    assert list(agent) == ["name", "unknown_fields", "rules"]
    assert (agent["name"], agent["unknown_fields"]) == ("agent", "rejected")
    assert (local["name"], local["unknown_fields"]) == ("local", "ignored")
    assert agent["rules"][1] == {
        "field": "max_tokens",
        "treatment": "ignored",
        "when": None,
        "reason": "accepted, but the full output is returned",
    }
    assert agent["rules"][3] == {
        "field": "n",
        "treatment": "rejected",
        "when": "> 1",
        "reason": "one answer per execution",
    }
    assert agent["rules"][6]["when"] == "= true"
    assert [r["field"] for r in agent["rules"]] == [r.field for r in AGENT.rules]


def test_json_of_no_matrices() -> None:
    assert msgspec.json.decode(matrix_to_json([])) == {"backends": []}


# -- table ----------------------------------------------------------------------


def test_table_has_a_block_per_backend_with_aligned_columns() -> None:
    text = render_table([AGENT, LOCAL])
    agent_block, local_block = text.strip().split("\n\n")
    lines = agent_block.splitlines()
    assert lines[0] == "agent (fields no rule names: rejected)"
    assert lines[1].split() == ["FIELD", "TREATMENT", "WHEN", "REASON"]
    assert len(lines) == 2 + len(AGENT.rules)
    reason_column = lines[1].index("REASON")
    for line, rule in zip(lines[2:], AGENT.rules, strict=True):
        assert line.startswith(rule.field + " ")
        assert line[reason_column:] == rule.reason
    n_rejected = next(line for line in lines if line.startswith("n ") and "rejected" in line)
    assert "> 1" in n_rejected
    assert local_block.splitlines()[0] == "local (fields no rule names: ignored)"


# -- reStructuredText -------------------------------------------------------------


def test_rst_is_valid_and_grouped_by_treatment() -> None:
    text = render_rst([AGENT, LOCAL])
    assert rst_warnings(text) == ""
    assert "``agent``\n---------\n" in text
    assert "Fields no rule names: rejected" in text
    labels = [line.strip()[4:] for line in text.splitlines() if line.startswith("   * - ")]
    agent_labels = labels[: labels.index("Treatment", 1)]
    # each treatment labels its first row only, in a fixed order
    assert agent_labels == ["Treatment", "supported", "emulated", "ignored", "rejected"]
    # fields sharing a treatment and a reason share a row; conditions are shown
    assert "     - ``logprobs``, ``stop``\n     - not supported yet" in text
    assert "``n`` > 1" in text
    assert "``stream`` = true" in text


def test_rst_escapes_markup_in_reasons() -> None:
    odd = Matrix("odd", [ignored("user", "a tag_ for *abuse* tracking | `x`")])
    text = render_rst([odd])
    assert rst_warnings(text) == ""
    doctree = docutils.core.publish_doctree(text)
    assert "a tag_ for *abuse* tracking | `x`" in doctree.astext()


# -- the built-in backends -------------------------------------------------------


def test_builtin_matrices_one_per_builtin_backend_sorted() -> None:
    matrices = builtin_matrices()
    names = [m.backend for m in matrices]
    assert names == sorted(backend_factories(get_plugin_manager(entry_points=False)))
    assert "echo" in names
    assert all(isinstance(m, Matrix) and m.rules for m in matrices)


def test_builtin_matrices_render_in_every_format() -> None:
    matrices = builtin_matrices()
    data = msgspec.json.decode(matrix_to_json(matrices))
    assert [b["name"] for b in data["backends"]] == [m.backend for m in matrices]
    assert rst_warnings(render_rst(matrices)) == ""
    table = render_table(matrices)
    for m in matrices:
        assert f"{m.backend} (fields no rule names: {m.unknown.value})" in table


def test_rst_of_a_matrix_without_rules_is_valid() -> None:
    text = render_rst([Matrix("bare", [])])
    assert rst_warnings(text) == ""
    assert "Fields no rule names: rejected" in text
