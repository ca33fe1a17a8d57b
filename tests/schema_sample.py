"""A value that fits a JSON schema, as a model held to that schema would answer.

The loopback stand-ins answer a request for JSON in a schema (Ollama's
``format``, the agent's ``config.json_schema``) with :func:`sample`: strings
are ``"Ada"``, integers ``36``, numbers ``1.5``, booleans true; an ``anyOf``
or ``oneOf`` takes its first choice, an ``enum`` its first value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sample"]

_SCALARS: dict[str, Any] = {"string": "Ada", "integer": 36, "number": 1.5, "boolean": True}


def sample(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """A value of ``schema`` (``$ref`` to ``#/$defs/...`` followed)."""
    if not isinstance(schema, dict):
        return None
    defs = {**(defs or {}), **schema.get("$defs", {})}
    if "$ref" in schema:  # one it cannot follow: null
        return sample(defs.get(schema["$ref"].rsplit("/", 1)[-1]), defs)
    for choice in ("anyOf", "oneOf", "allOf"):
        if schema.get(choice):
            return sample(schema[choice][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample(sub, defs) for name, sub in properties.items()}
    if kind == "array":
        return [sample(schema.get("items", {}), defs)]
    return _SCALARS.get(kind)
