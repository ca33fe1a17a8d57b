"""A schema's patterns are matched in linear time, within a budget, as JSON Schema means them.

The strings below take Python's ``re`` (a backtracking matcher) longer than
the age of the universe against their pattern; here each is answered at once.
What cannot be matched in linear time (lookaround, backreferences) is refused
when the schema is compiled, with the pattern in the reason.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, StringConstraints

from translator._json_schema import SchemaError, budget, patterns, schema_check


def _check(schema: Any) -> Any:
    return schema_check(json.dumps(schema).encode())


def _string(pattern: str) -> Any:
    return _check({"type": "string", "pattern": pattern})


BACKTRACKING = {
    # pattern: (a string it matches, one made to make a backtracking matcher give up late)
    r"^(a+)+$": ("a" * 30, "a" * 50_000 + "!"),
    r"(\w+\s?)+$": ("two words", "word " * 10_000 + "!"),
    r"(a|aa)+$": ("aaaa", "a" * 50_000 + "!"),
    r"^(\d+|\d+-)+$": ("12-34", "1" * 50_000 + "x"),
    r"^.*a.*a.*a.*b$": ("aaab", "a" * 50_000),  # no nested quantifier, still a power of n
    r"^([a-z0-9]+\.)*[a-z0-9]+\.[a-z]{2,}$": ("mail.example.org", "a." * 20_000 + "!"),
}


@pytest.mark.parametrize("pattern", sorted(BACKTRACKING))
def test_a_pattern_that_backtracks_for_ages_is_matched_at_once(pattern: str) -> None:
    right, hostile = BACKTRACKING[pattern]
    check = _string(pattern)
    started = time.perf_counter()
    assert check(right) is None
    assert check(hostile) == f"$ must match pattern {pattern}"
    assert time.perf_counter() - started < 1.0


class Contact(BaseModel):
    phone: Annotated[str, StringConstraints(pattern=r"^\d{3}-\d{4}$")]
    area_codes: Annotated[str, StringConstraints(pattern=r"^(\d{3}-)+\d{4}$")]
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z]+(-[a-z]+)*$")]
    email: Annotated[str, StringConstraints(pattern=r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")]
    site: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+[^\s]*$")]
    key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")]
    day: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
    at: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")]


RIGHT_CONTACT = {
    "phone": "555-1234",
    "area_codes": "020-030-1234",
    "slug": "well-kept-path",
    "email": "ada.lovelace+notes@mail.example.org",
    "site": "https://example.org/a?b=c",
    "key": "123e4567-e89b-12d3-a456-426614174000",
    "day": "2024-02-29",
    "at": "23:59:07",
}
WRONG_CONTACT = {
    "phone": "5551234",
    "area_codes": "020-030-",
    "slug": "double--dash",
    "email": "ada@localhost",
    "site": "ftp://example.org",
    "key": "123e4567-e89b-12d3-a456-42661417400",
    "day": "2024-13-01",
    "at": "24:00",
}


@pytest.mark.parametrize("field", sorted(WRONG_CONTACT))
def test_common_patterns_from_pydantic_are_taken_and_hold_the_answer(field: str) -> None:
    check = _check(Contact.model_json_schema())
    assert check(RIGHT_CONTACT) is None
    found = check({**RIGHT_CONTACT, field: WRONG_CONTACT[field]})
    assert found is not None
    assert found.startswith(f"$.{field} must match pattern")


DOLLARS = {
    # pattern: (strings it matches, strings it does not)
    r"^https?://[^\s/$.?#].[^\s]*$": (
        ["https://example.org/a?b=c", "http://x.y"],
        ["https://$x.org", "https:///path", "ftp://example.org", "https://example.org/\n"],
    ),
    r"^[a-zA-Z_$][\w$]*$": (["$scope", "_id", "a$b"], ["1a", "a-b", "a\n"]),
    r"^\$\d+(\.\d{2})?$": (["$5", "$12.50"], ["5", "$", "$5.5", "$5\n"]),
    r"costs \$$": (["it costs $"], ["costs $5", "costs "]),
    r"^C:\\$": (["C:\\"], ["C:", "C:\\x"]),
}


@pytest.mark.parametrize("pattern", sorted(DOLLARS))
def test_a_dollar_in_a_class_escaped_or_at_the_end_means_what_json_schema_says(
    pattern: str,
) -> None:
    """A ``$`` in a character class is a dollar sign, ``\\$`` too; at the end it ends the text."""
    matching, other = DOLLARS[pattern]
    checked = _string(pattern)
    keyed = _check({"type": "object", "patternProperties": {pattern: {"type": "null"}}})
    named = _check({"type": "object", "propertyNames": {"pattern": pattern}})
    for text in matching:
        assert checked(text) is None
        assert keyed({text: None}) is None
        assert named({text: 0}) is None
    for text in other:
        assert checked(text) == f"$ must match pattern {pattern}"
        assert keyed({text: 0}) is None  # no pattern's property: anything goes
        assert named({text: 0}) is not None
    assert keyed({matching[0]: 0}) is not None


REFUSED = {
    "lookahead": r"^(?=.*\d)(?=.*[a-z]).{8,}$",
    "negative lookahead": r"^(?!admin$).+$",
    "lookbehind": r"(?<=@)\w+",
    "backreference": r"^(a+)\1$",
    "named backreference": r"^(?P<x>a)(?P=x)$",
    "atomic group": r"^(?>a+)b$",
    "possessive": r"^a++b$",
    "Python's own end of text": r"^a\Z",
    "a program too large": r"^.{1000}.{1000}.{1000}$",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_matched_in_linear_time_is_refused_naming_the_pattern(case: str) -> None:
    pattern = REFUSED[case]
    for schema in (
        {"type": "string", "pattern": pattern},
        {"type": "object", "patternProperties": {pattern: {"type": "integer"}}},
        {"type": "object", "propertyNames": {"pattern": pattern}},
        {"anyOf": [{"type": "null"}, {"items": {"pattern": pattern}}]},
    ):
        with pytest.raises(SchemaError) as caught:
            _check(schema)
        assert repr(pattern) in str(caught.value)


def test_a_schema_of_too_many_distinct_patterns_is_refused() -> None:
    def schema(count: int) -> Any:
        return {"properties": {f"p{i}": {"pattern": f"^{i}$"} for i in range(count)}}

    _check(schema(patterns.PATTERNS))
    with pytest.raises(SchemaError) as caught:
        _check(schema(patterns.PATTERNS + 1))
    assert "patterns" in str(caught.value)


def test_patterns_mean_what_json_schema_says() -> None:
    """ECMA-262, not Python: ``$`` ends the text, ``\\d`` is ASCII, ``\\u`` is a code point."""
    digits = _string(r"^\d{3}$")
    assert digits("123") is None
    assert digits("123\n") is not None
    assert digits("١٢٣") is not None  # Arabic-Indic digits: Python's \d takes them
    keyed = _check({"patternProperties": {r"^\d+$": {"type": "integer"}}})
    assert keyed({"12": 1}) is None
    assert keyed({"12": "x"}) is not None
    assert keyed({"12\n": "x"}) is None  # Python's $ would match before the newline
    accented = _string(r"^caf\u00e9 [\u0041-\u005A]\\u$")
    assert accented("café B\\u") is None
    assert accented("cafe B\\u") is not None
    assert _string(r"^\\u0041$")("\\u0041") is None  # an escaped backslash, then "u0041"


def test_the_text_matched_for_one_value_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "WORK", 20_000)
    words = {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
    check = _check({"anyOf": [words, {"type": "array"}]})
    assert check(["word" * 10] * 3) is None
    for _ in range(2):  # refused whatever anyOf's other branch allows, and afresh each time
        found = check(["word" * 100] * 100)
        assert found == "$ has more text than is matched against the schema's patterns"
    assert check(["word" * 10] * 3) is None  # each value has a budget of its own
    assert _check(words)(["word" * 10, "Word"]) == "$[1] must match pattern ^[a-z]+$"
