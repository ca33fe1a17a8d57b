"""JSON values checked against a JSON Schema a client sent; each schema compiled once.

:func:`schema_check` turns a schema's JSON text into a :class:`SchemaCheck`
(fastjsonschema writes a Python function for it), or raises
:class:`SchemaError` saying why it cannot. Compiling takes milliseconds and
checking microseconds, so compiled schemas (and refusals) are kept, by the
schema's bytes, in :data:`MEMORY` (by estimate: see :func:`_compiled`), the
least recently used dropped first. A client sending ever new schemas, each as
large as may be, moves others out but cannot grow the server.

The policy, for schemas that come from clients:

- a schema of more than :data:`.size.VALUES` JSON values is refused before it
  is compiled (:mod:`.size`: compiling a large one would hold the event loop);
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
- one value's check stops after :data:`.budget.CALLS` calls between the
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

from . import budget, deadline
from .cache import CostBoundedCache
from .generate import compile_schema
from .meta import META
from .patterns import (
    PATTERN_MEMORY,
    PatternError,
    TooMuchText,
    match_in_linear_time,
)
from .size import SchemaTooLarge, check_size

__all__ = ["MEMORY", "SchemaCheck", "SchemaError", "schema_check"]

MEMORY: Final = 64 << 20
"""The memory, in bytes by estimate, that compiled schemas (and refusals) are kept in."""
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
        budget.start()
        try:
            self._validate(value, name_prefix=at)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _shorten(_describe(exc))
        except RecursionError:  # a recursive schema ($ref) and a value nested deeper still
            return f"{at} is nested too deeply to be checked"
        except TooMuchText:
            return f"{at} has more text than is matched against the schema's patterns"
        except deadline.TooLong:
            return f"{at} takes more than {budget.CALLS:,} steps to check against the schema"
        return None


_cache: Final[CostBoundedCache[bytes, SchemaCheck | str]] = CostBoundedCache(MEMORY)


def schema_check(schema: bytes) -> SchemaCheck:
    """The check for the JSON Schema ``schema`` (JSON text); raises :class:`SchemaError`."""
    compiled = _cache.get(schema)
    if compiled is None:
        compiled, held = _compiled(schema)
        _cache.put(schema, compiled, len(schema) + held)  # the key, and what the value holds
    if isinstance(compiled, str):
        raise SchemaError(compiled)
    return compiled


def _compiled(schema: bytes) -> tuple[SchemaCheck | str, int]:
    """The check, or why there is none (a message: an exception kept would grow a
    traceback each time it is raised again); and the memory, by estimate, it holds:
    twice the generated code's length (its functions were measured to hold 1 to 4
    times it), and :data:`.patterns.PATTERN_MEMORY` for each pattern."""
    compiled = _compile(schema)
    if isinstance(compiled, str):
        return compiled, len(compiled)
    check, code_size, patterns = compiled
    return check, 2 * code_size + patterns * PATTERN_MEMORY


def _compile(schema: bytes) -> tuple[SchemaCheck, int, int] | str:
    """The check, the length of its code and its number of patterns; or why there is none."""
    try:
        definition = _decode(schema)
    except msgspec.DecodeError as exc:
        return _shorten(f"it is not JSON ({exc})")
    except RecursionError:
        return "it is nested too deeply to be checked"
    try:
        check_size(definition)
    except SchemaTooLarge as exc:
        return str(exc)
    wrong = _meta()(definition, at="$")
    if wrong is not None:
        return wrong
    try:
        validate, code_size = compile_schema(definition, _NO_REMOTE)
        patterns = match_in_linear_time(validate)
        deadline.bound_calls(validate)
    except (_RemoteRef, PatternError, fastjsonschema.JsonSchemaDefinitionException) as exc:
        return _shorten(str(exc))
    except re.error as exc:
        return _shorten(f"a pattern is not a regular expression Python reads ({exc})")
    except (SyntaxError, RecursionError):  # Python's limits on the generated code
        return "it is nested too deeply to be checked"
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # What passed the meta-schema but not the code generator: a $ref into a
        # value that is not a schema, say. The schema is refused either way.
        return _shorten(f"it cannot be compiled ({type(exc).__name__}: {exc})")
    return SchemaCheck(validate), code_size, patterns


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
