"""A recursive schema cannot make one answer's check take exponential time.

A ``$ref`` back into its own schema, under ``anyOf`` or ``oneOf``, checks the
rest of a nested value once per branch, at every level: 2**20 times over for
an answer nested 20 deep. Each check is cut off after ``budget.CALLS`` steps with a
reason, and a real recursive answer is checked in full.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import BaseModel

from translator._json_schema import budget, schema_check

DEPTH = 20
"""Levels of nesting that take a check without a deadline several seconds."""
PROMPT = 1.0
"""Seconds within which a hostile answer is refused."""


def _check(schema: Any) -> Any:
    return schema_check(json.dumps(schema).encode())


def _node(ref: str, keyword: str = "anyOf") -> Any:
    """Two branches that both follow ``ref`` before one can fail."""
    branch = {"type": "object", "properties": {"c": {"$ref": ref}}}
    return {keyword: [branch, {**branch, "minProperties": 1}]}


SCHEMAS = {
    "anyOf under $defs": {"$defs": {"n": _node("#/$defs/n")}, "$ref": "#/$defs/n"},
    "oneOf under $defs": {"$defs": {"n": _node("#/$defs/n", "oneOf")}, "$ref": "#/$defs/n"},
    "anyOf at the root": _node("#"),
    "in a property": {
        "type": "object",
        "properties": {"tree": {"$ref": "#/definitions/n"}},
        "definitions": {"n": _node("#/definitions/n")},
    },
}


def _nested(case: str, depth: int, leaf: Any) -> Any:
    """``{"c": {"c": ... leaf}}``, where ``case``'s schema takes it."""
    value = leaf
    for _ in range(depth):
        value = {"c": value}
    return {"tree": value} if "tree" in SCHEMAS[case].get("properties", {}) else value


@pytest.mark.parametrize("case", sorted(SCHEMAS))
def test_a_deep_answer_that_fails_at_the_bottom_is_refused_at_once(case: str) -> None:
    check = _check(SCHEMAS[case])
    started = time.perf_counter()
    found = check(_nested(case, DEPTH, 5))
    assert time.perf_counter() - started < PROMPT
    assert found == f"$ takes more than {budget.CALLS:,} steps to check against the schema"
    found = check(_nested(case, 3, 5))  # the same fault, found in full within the limit
    assert found is not None
    assert "takes more than" not in found


@pytest.mark.parametrize("case", sorted(set(SCHEMAS) - {"oneOf under $defs"}))
def test_a_deep_answer_that_fits_is_taken(case: str) -> None:
    """(``oneOf`` tries every branch of a fitting answer too: exponential either way.)"""
    check = _check(SCHEMAS[case])
    assert check(_nested(case, 200, {})) is None
    assert (
        check(_nested(case, DEPTH, 5)) is not None
    )  # refused, then the next check has its budget afresh
    assert check(_nested(case, 200, {})) is None


def test_a_chain_of_references_without_recursion_is_bounded_too() -> None:
    """Each of 24 ``$defs`` names the next twice: one scalar is checked 2**24 times over."""
    defs: dict[str, Any] = {"d24": {"type": "string"}}
    for i in range(24):
        ref = {"$ref": f"#/$defs/d{i + 1}"}
        defs[f"d{i}"] = {"anyOf": [ref, {"allOf": [ref]}]}
    check = _check({"$defs": defs, "$ref": "#/$defs/d0"})
    assert check("fits") is None
    started = time.perf_counter()
    assert check(5) == f"$ takes more than {budget.CALLS:,} steps to check against the schema"
    assert time.perf_counter() - started < PROMPT


class Folder(BaseModel):
    name: str
    note: str | None = None
    folders: list[Folder] = []


def _tree(width: int, depth: int) -> Any:
    children = [] if depth == 0 else [_tree(width, depth - 1) for _ in range(width)]
    return {"name": f"level {depth}", "note": None, "folders": children}


def test_a_large_answer_of_a_recursive_pydantic_model_is_checked_in_full() -> None:
    check = _check(Folder.model_json_schema())
    tree = _tree(4, 5)  # 1,365 folders
    assert check(tree) is None
    tree["folders"][3]["folders"][3]["folders"][3]["name"] = 7
    found = check(tree)
    assert found is not None
    assert found.startswith("$.folders[3].folders[3].folders[3].name")
