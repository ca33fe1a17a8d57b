"""What a schema sent by a client must look like before it is compiled.

JSON Schema draft-07's meta-schema, as the value of :data:`META`, with three
changes for the schemas clients send: ``$defs`` (where pydantic and
2019-09 on keep subschemas) is checked like ``definitions``;
``exclusiveMinimum`` and ``exclusiveMaximum`` may be draft-04's booleans; and
no ``$id``, ``default`` or ``format`` (nothing is fetched, filled in or
asserted). Checked first, it turns a keyword of the wrong kind
(``"properties": 5``, ``"multipleOf": 0``) into a message with its path
rather than a failure deep in the code generator, or in the validator later.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["META"]

_SCHEMA: Final = {"$ref": "#"}
_SCHEMAS: Final = {"type": "array", "minItems": 1, "items": _SCHEMA}
_COUNT: Final = {"type": "integer", "minimum": 0}
_NAMES: Final = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
_BOUND: Final = {"type": ["number", "boolean"]}
_SIMPLE_TYPES: Final = {
    "enum": ["array", "boolean", "integer", "null", "number", "object", "string"]
}
_BY_NAME: Final = {"type": "object", "additionalProperties": _SCHEMA}

META: Final[dict[str, Any]] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": ["object", "boolean"],
    "properties": {
        "$id": {"type": "string"},
        "$schema": {"type": "string"},
        "$ref": {"type": "string"},
        "$comment": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "readOnly": {"type": "boolean"},
        "examples": {"type": "array"},
        "multipleOf": {"type": "number", "exclusiveMinimum": 0},
        "maximum": {"type": "number"},
        "exclusiveMaximum": _BOUND,
        "minimum": {"type": "number"},
        "exclusiveMinimum": _BOUND,
        "maxLength": _COUNT,
        "minLength": _COUNT,
        "pattern": {"type": "string"},
        "additionalItems": _SCHEMA,
        "items": {"anyOf": [_SCHEMA, _SCHEMAS]},
        "maxItems": _COUNT,
        "minItems": _COUNT,
        "uniqueItems": {"type": "boolean"},
        "contains": _SCHEMA,
        "maxProperties": _COUNT,
        "minProperties": _COUNT,
        "required": _NAMES,
        "additionalProperties": _SCHEMA,
        "definitions": _BY_NAME,
        "$defs": _BY_NAME,
        "properties": _BY_NAME,
        "patternProperties": _BY_NAME,
        "dependencies": {
            "type": "object",
            "additionalProperties": {"anyOf": [_SCHEMA, _NAMES]},
        },
        "propertyNames": _SCHEMA,
        "enum": {"type": "array"},
        "type": {
            "anyOf": [
                _SIMPLE_TYPES,
                {"type": "array", "items": _SIMPLE_TYPES, "minItems": 1, "uniqueItems": True},
            ]
        },
        "format": {"type": "string"},
        "contentMediaType": {"type": "string"},
        "contentEncoding": {"type": "string"},
        "if": _SCHEMA,
        "then": _SCHEMA,
        "else": _SCHEMA,
        "allOf": _SCHEMAS,
        "anyOf": _SCHEMAS,
        "oneOf": _SCHEMAS,
        "not": _SCHEMA,
    },
}
"""The meta-schema: a schema of schemas."""
