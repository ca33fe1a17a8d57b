"""JSON values checked against a JSON Schema a client sent; each schema compiled once.

:func:`schema_check` turns a schema's JSON text into a :class:`SchemaCheck`
(fastjsonschema writes a Python function for it), or raises
:class:`SchemaError` saying why it cannot. Compiling takes milliseconds and
checking microseconds, so compiled schemas (and refusals) are kept, by the
schema's bytes, for the last :data:`CACHED` distinct schemas.

The policy, for schemas that come from clients:

- the schema must first be one: it is checked against a meta-schema
  (:mod:`.meta`), so a keyword of the wrong kind is refused with its path;
- ``$ref`` is followed only within the schema (``#/$defs/...``): a reference
  to anything else is refused, never fetched (no network, no files);
- ``format`` is an annotation, as JSON Schema 2019-09 on has it: pydantic
  writes ``date-time`` for naive datetimes too, which a format check refuses;
- ``default`` is not filled in: a checked value is never changed;
- the draft is the one ``$schema`` names (04, 06, 07, 2019-09), else 2019-09;
  keywords fastjsonschema does not know (2020-12's ``prefixItems``, say) are
  not checked;
- a schema nested too deeply for the generated code (about 20 levels of
  arrays) is refused; so is a ``pattern`` Python's ``re`` cannot read as
  written (:mod:`.generate`: not as fastjsonschema rewrites it, ``$`` made
  ``\\Z`` even in a character class);
- patterns are matched by RE2, in linear time and within a budget
  (:mod:`.patterns`): one RE2 cannot match so is refused;
- one value's check stops after :data:`.deadline.LIMIT` calls between the
  schema's parts (:mod:`.deadline`): ``$ref`` under ``anyOf`` can take time exponential in
  the value's depth.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NoReturn

import fastjsonschema
import msgspec

from . import deadline
from .generate import compile_schema
from .meta import META
from .patterns import PatternError, TooMuchText, match_in_linear_time, refill

__all__ = ["CACHED", "SchemaCheck", "SchemaError", "schema_check"]

CACHED: Final = 512
"""How many distinct schemas stay compiled."""
MESSAGE_LIMIT: Final = 300
"""The longest description of what is wrong, in characters."""

_decode = msgspec.json.decode


class SchemaError(ValueError):
    """A schema that cannot be checked against; the message says why."""


class SchemaCheck:
    """One compiled schema. Calling it with a decoded JSON value says what is wrong
    with the value (a path from ``at`` and a reason), or None when it fits."""

    __slots__ = ("_validate",)

    def __init__(self, validate: Callable[..., Any]) -> None:
        self._validate = validate

    def __call__(self, value: Any, *, at: str = "$") -> str | None:
        refill()
        deadline.start()
        try:
            self._validate(value, name_prefix=at)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _shorten(_describe(exc))
        except RecursionError:  # a recursive schema ($ref) and a value nested deeper still
            return f"{at} is nested too deeply to be checked"
        except TooMuchText:
            return f"{at} has more text than is matched against the schema's patterns"
        except deadline.TooLong:
            return f"{at} takes more than {deadline.LIMIT:,} steps to check against the schema"
        return None


def schema_check(schema: bytes) -> SchemaCheck:
    """The check for the JSON Schema ``schema`` (JSON text); raises :class:`SchemaError`."""
    compiled = _compiled(schema)
    if isinstance(compiled, str):
        raise SchemaError(compiled)
    return compiled


@functools.lru_cache(maxsize=CACHED)
def _compiled(schema: bytes) -> SchemaCheck | str:
    """The check, or why there is none (a message: an exception kept would grow a
    traceback each time it is raised again)."""
    try:
        definition = _decode(schema)
    except msgspec.DecodeError as exc:
        return _shorten(f"it is not JSON ({exc})")
    except RecursionError:
        return "it is nested too deeply to be checked"
    wrong = _meta()(definition, at="$")
    if wrong is not None:
        return wrong
    try:
        validate = compile_schema(definition, _NO_REMOTE)
        match_in_linear_time(validate)
        deadline.bound_calls(validate)
    except (_RemoteRef, PatternError) as exc:
        return _shorten(str(exc))
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        return _shorten(str(exc))
    except re.error as exc:
        return _shorten(f"a pattern is not a regular expression Python reads ({exc})")
    except (SyntaxError, RecursionError):  # Python's limits on the generated code
        return "it is nested too deeply to be checked"
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # What passed the meta-schema but not the code generator: a $ref into a
        # value that is not a schema, say. The schema is refused either way.
        return _shorten(f"it cannot be compiled ({type(exc).__name__}: {exc})")
    return SchemaCheck(validate)


@functools.cache
def _meta() -> SchemaCheck:
    """The meta-schema's check, compiled on first use (compiling mutates: a copy)."""
    return SchemaCheck(
        fastjsonschema.compile(copy.deepcopy(META), use_default=False, use_formats=False)
    )


class _RemoteRef(SchemaError):
    pass


def _refuse(uri: str) -> NoReturn:
    raise _RemoteRef(_shorten(f"$ref {uri!r} is outside the schema, and is not fetched"))


class _NoRemoteRefs(Mapping[str, Callable[[str], Any]]):
    """fastjsonschema's URI handlers: one for every scheme (else it would use urllib),
    and each refuses."""

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return _refuse

    def __contains__(self, scheme: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_REMOTE: Final = _NoRemoteRefs()


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """What is wrong and where; for a missing property, which ones."""
    value, names = exc.value, exc.rule_definition
    if exc.rule == "required" and isinstance(value, dict) and isinstance(names, list):
        missing = [name for name in names if name not in value]
        if missing:
            return f"{exc.name} lacks {', '.join(map(repr, missing))}"
    return exc.message


def _shorten(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
