"""``translator._json_schema``: client schemas compiled once, checked in full, never trusted.

What a forced tool call's answer is held to (see ``tests/core/test_forced_tool_schema.py``
for the same through the server): every keyword of the schema, ``$ref`` within
it; what cannot be checked is refused with the reason, and nothing a schema
says is fetched, filled in or run.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from translator import _json_schema as json_schema
from translator._json_schema import MESSAGE_LIMIT, SchemaError, schema_check


def _check(schema: Any) -> Any:
    return schema_check(json.dumps(schema).encode())


class Address(BaseModel):
    street: str
    zip: str | None = None


class Person(BaseModel):
    name: str
    role: Literal["author", "reader"]
    home: Address
    previous: Address | None = None


PERSON = Person.model_json_schema()


def test_a_pydantic_schema_with_refs_and_optionals_is_checked_in_full() -> None:
    assert "$defs" in PERSON
    check = _check(PERSON)
    right = {"name": "Ada", "role": "author", "home": {"street": "St James's Square"}}
    assert check(right) is None
    assert check({**right, "previous": None}) is None
    assert check({**right, "previous": {"street": "Marylebone", "zip": None}}) is None
    wrong = {
        "$.home.street": {**right, "home": {"street": 7}},
        "$.home lacks 'street'": {**right, "home": {"zip": "W1"}},
        "$.role": {**right, "role": "critic"},
        "$.previous": {**right, "previous": {"zip": "W1"}},
        "$ lacks 'home'": {"name": "Ada", "role": "author"},
    }
    for where, value in wrong.items():
        found = check(value)
        assert found is not None, value
        assert found.startswith(where), (where, found)


def test_the_path_starts_where_the_caller_says() -> None:
    value = {"name": 1, "role": "author", "home": {"street": "x"}}
    found = _check(PERSON)(value, at="$.arguments")
    assert found is not None
    assert found.startswith("$.arguments.name")


def test_a_checked_value_is_never_changed_and_format_is_not_asserted() -> None:
    check = _check(
        {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": "integer", "default": 3},
            },
        }
    )
    value = {"when": "2024-05-01T10:00:00"}  # naive: pydantic's own datetime, no offset
    assert check(value) is None
    assert value == {"when": "2024-05-01T10:00:00"}


def test_the_draft_named_by_schema_is_used() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "minimum": 1,
        "exclusiveMinimum": True,
    }
    assert _check(draft4)(1) is not None
    assert _check(draft4)(1.5) is None
    assert _check({"$schema": draft4["$schema"], "const": 1})(2) is None  # not in draft-04
    for draft in (
        "draft-04/schema#",
        "draft-06/schema#",
        "draft-07/schema#",
        "draft/2019-09/schema",
    ):
        schema = {"$schema": f"http://json-schema.org/{draft}", "pattern": "^[$]+$"}
        assert _check(schema)("$$") is None
        assert _check(schema)("$$\n") is not None
    assert _check({"$schema": "http://json-schema.org/draft-07/schema#", "const": 1})(2)


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "properties": 5}, "$.properties"),
        ({"properties": {"a": {"type": "strin"}}}, "$.properties.a.type"),
        ({"properties": {"n": {"multipleOf": 0}}}, "$.properties.n.multipleOf"),
        ({"anyOf": [5]}, "$.anyOf[0]"),
        ({"$defs": {"A": 3}}, "$.$defs.A"),
        ({"required": "a"}, "$.required"),
        ({"items": {"maxLength": 1.5}}, "$.items"),
    ],
)
def test_what_is_not_a_schema_is_refused_with_its_path(schema: Any, where: str) -> None:
    with pytest.raises(SchemaError) as caught:
        _check(schema)
    assert str(caught.value).startswith(where)


@pytest.mark.parametrize(
    "text",
    [
        b"{not json",
        b'{"properties": {"a": {"$ref": "#/$defs/Missing"}}}',
        b'{"type": "string", "pattern": "(unclosed"}',
        b'{"not":' * 2000 + b"{}" + b"}" * 2000,
        b'{"type": "array", "items":' * 40 + b"{}" + b"}" * 40,
    ],
    ids=["not json", "ref to nothing", "bad pattern", "too deep to read", "too deep to compile"],
)
def test_a_schema_that_cannot_be_compiled_is_refused_not_raised(text: bytes) -> None:
    for _ in range(2):  # the refusal is remembered, and raised afresh each time
        with pytest.raises(SchemaError) as caught:
            schema_check(text)
        assert str(caught.value)
        assert len(str(caught.value)) <= MESSAGE_LIMIT


def test_a_ref_outside_the_schema_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "string.json"
    target.write_text('{"type": "string"}')
    for ref in (target.as_uri(), "string.json", "urn:example:string"):
        with pytest.raises(SchemaError) as caught:
            _check({"properties": {"a": {"$ref": ref}}})
        assert ref in str(caught.value)


def test_an_id_does_not_make_a_local_ref_remote() -> None:
    check = _check(
        {
            "$id": "http://127.0.0.1:9/person.json",
            "properties": {"home": {"$ref": "#/$defs/Address"}},
            "$defs": {"Address": {"type": "object", "required": ["street"]}},
        }
    )
    assert check({"home": {"street": "x"}}) is None
    assert check({"home": {}}) is not None


HOSTILE = [
    'a"b',
    "a'b",
    "a{b}c",
    "{name_prefix}",
    "line\nbreak",
    "back\\slash",
    '"]\nimport builtins; builtins.INJECTED = 1\n#',
    "'''\nimport builtins; builtins.INJECTED = 1\n'''",
    '\\"); import builtins; builtins.INJECTED = 1 #',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_strings_in_a_schema_are_data_never_code(text: str) -> None:
    schema = {
        "title": text,
        "description": text,
        "type": "object",
        "properties": {text: {"type": "integer", "enum": [1, 2]}, "s": {"const": text}},
        "required": [text],
        "dependencies": {text: ["s"]},
    }
    check = _check(schema)
    assert check({text: 1, "s": text}) is None
    assert check({text: "1", "s": text}) is not None
    assert check({text: 1}) is not None  # the dependency
    assert check({text: 1, "s": "other"}) is not None  # the const
    assert check({"s": text}) is not None  # required
    if "\\" not in text:  # a regular expression that matches itself
        pattern = _check({"type": "string", "pattern": text})
        assert pattern(text) is None
        assert pattern("zzz") is not None
        keyed = _check({"patternProperties": {text: {"type": "null"}}})
        assert keyed({text: None}) is None
        assert keyed({text: 0}) is not None
    assert not hasattr(builtins, "INJECTED")


def test_each_distinct_schema_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[Any] = []
    real = json_schema.compile_schema

    def counting(definition: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(definition)
        return real(definition, *args, **kwargs)

    monkeypatch.setattr(json_schema, "compile_schema", counting)
    text = json.dumps({**PERSON, "title": "compiled once"}).encode()
    first = schema_check(text)
    assert schema_check(bytes(bytearray(text))) is first  # equal bytes, another object
    assert len(compiled) == 1
    schema_check(text.replace(b"compiled once", b"compiled twice"))
    assert len(compiled) == 2


def test_a_value_nested_deeper_than_python_recurses_is_refused_not_raised() -> None:
    check = _check({"type": "object", "properties": {"a": {"$ref": "#"}}})
    value: dict[str, Any] = {}
    inner = value
    for _ in range(sys.getrecursionlimit() + 100):
        inner["a"] = {}
        inner = inner["a"]
    found = check(value)
    assert found is not None
    assert found.startswith("$")


def test_a_long_reason_is_cut_short() -> None:
    check = _check({"enum": [f"value number {i}" for i in range(200)]})
    found = check("none of them")
    assert found is not None
    assert len(found) == MESSAGE_LIMIT
    assert found.endswith("…")
