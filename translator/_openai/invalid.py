"""Turning a failed decode into the 400 an OpenAI client expects.

msgspec reports the first problem as a message and a JSON path. The path
becomes the error's ``param`` (``messages[2].content[1].image_url.url``, a
dict entry as ``logit_bias.50256``) and the message is rewritten in OpenAI's
words: what was expected, what was sent, and, for an unknown role, part type or
enum value, the values that are valid. A key the model does not know, below the
top level, is named whole (``messages[0].foo``) as an unrecognized argument.
This runs only when decoding failed.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import msgspec
from msgspec import UnsetType

from .._model import ChatRequest
from .._model.tools import NOT_UTF8 as TEXT_NOT_UTF8
from ..errors import InvalidRequestError
from .unparsable import NOT_UTF8, why_unparsable

__all__ = ["UNREADABLE", "decode_error", "key_param", "listed", "not_utf8", "shown"]

UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding a body may raise: bad JSON or schema, text not UTF-8, nesting too deep."""

_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+|\.\.\.)\]")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

_FIELD = re.compile(r"^Field `(?P<field>[^`]+)`: (?P<msg>.*)$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.DOTALL)
_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`(?:, got `(?P<got>[^`]+)`)?$")
_BOUND = re.compile(r"^Expected `(?P<kind>int|float)` (?P<op>>=|<=|>|<) (?P<limit>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>str|array|object)` of length (?P<op>>=|<=) (?P<n>\d+)$")
_PATTERN = re.compile(r"^Expected `str` matching regex (?P<pattern>.+)$")
_CHOICE = re.compile(r"^Invalid (?:enum )?value (?P<value>.+)$", re.DOTALL)

_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
_NOTHING: Any = object()


class _Spot(NamedTuple):
    """Where a decode failed: the ``param``, the model's type there (``None`` when
    it could not be followed), the valid values there, and what was sent."""

    param: str
    type: Any
    choices: tuple[object, ...]
    value: Any


def decode_error(
    exc: msgspec.DecodeError | UnicodeDecodeError | RecursionError,
    body: bytes | bytearray | memoryview | None = None,
    root: Any = ChatRequest,
) -> InvalidRequestError:
    """The 400 for a msgspec decode or validation failure of ``body`` as ``root``.

    ``param`` is the exact path of the problem; with ``body`` given, the
    message also says what the client sent there. Text that is not UTF-8, and
    JSON nested deeper than the decoder goes, are invalid JSON.
    """
    if not isinstance(exc, msgspec.ValidationError):
        return _unparsable(why_unparsable(body, too_deep=isinstance(exc, RecursionError)))
    try:
        return _validation_error(str(exc), body, root)
    except (LookupError, TypeError, ValueError, AttributeError):
        # msgspec said or placed something this module cannot follow (a wording
        # of a release it does not know): still the client's 400, never a 500.
        return InvalidRequestError(
            "The request does not match the expected format.", param=_best_param(str(exc))
        )


def _best_param(text: str) -> str | None:
    """The dotted path in a msgspec message, as far as it can be read, or ``None``."""
    match = _AT.match(text)
    path = match["path"] if match is not None else None
    return path.removeprefix(".") or None if path else None


def _validation_error(
    text: str, body: bytes | bytearray | memoryview | None, root: Any
) -> InvalidRequestError:
    """The 400 for msgspec's validation message ``text``, in OpenAI's words."""
    match = _AT.match(text)
    if match is None:
        return InvalidRequestError(f"Invalid request: {text}.")
    message, path, at_key = match["msg"], match["path"], match["key"] is not None
    field = _FIELD.match(message)
    if field is not None:
        message, path = field["msg"], f"{path or ''}.{field['field']}"
    if path is None and not _MISSING.match(message) and not _UNKNOWN.match(message):
        return _whole_body(message)
    spot = _locate(path or "", at_key, _document(body), root)
    return _explain(message, spot, at_key)


def _unparsable(why: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(
        f"We could not parse the JSON body of your request ({why}). "
        "The API expects a JSON object as the request body.",
        param=param,
        code="invalid_json",
    )


def not_utf8(param: str) -> InvalidRequestError:
    """The 400 for raw JSON at ``param`` (kept undecoded) whose text is not UTF-8."""
    return _unparsable(f"{NOT_UTF8}, in '{param}'", param)


def _whole_body(message: str) -> InvalidRequestError:
    typed = _TYPE.match(message)
    if typed is not None and typed["expected"] == "object":
        got = _WORDS.get(typed["got"], typed["got"])
        return InvalidRequestError(
            f"The request body must be a JSON object, but got {got} instead.",
            code="invalid_type",
        )
    return InvalidRequestError(f"Invalid request: {message}.")


def _explain(message: str, spot: _Spot, at_key: bool) -> InvalidRequestError:
    """An OpenAI-worded error for one msgspec message at ``spot``."""
    param = spot.param
    sent = shown(spot.value)
    if (missing := _MISSING.match(message)) is not None:
        field = f"{param}.{missing['field']}" if param else missing["field"]
        tags = _tags(spot.type, missing["field"])
        hint = f" Expected one of {listed(tags, 'or')}." if tags else ""
        return InvalidRequestError(
            f"Missing required parameter: '{field}'.{hint}",
            param=field,
            code="missing_required_parameter",
        )
    if (unknown := _UNKNOWN.match(message)) is not None:
        field = param + _key_step(unknown["field"]) if param else unknown["field"]
        return InvalidRequestError(
            f"Unrecognized request argument supplied: {field}",
            param=field,
            code="unknown_parameter",
        )
    if message == TEXT_NOT_UTF8:
        return not_utf8(param)
    if (typed := _TYPE.match(message)) is not None:
        expected = [_WORDS.get(t, f"`{t}`") for t in typed["expected"].split(" | ")]
        wanted = expected[0] if len(expected) == 1 else "one of " + _or(expected)
        kind = typed["got"] or _kind(spot.value)
        got = f", but got {_WORDS.get(kind, kind)} instead" if kind else ""
        valid = f" Supported values are: {listed(spot.choices)}." if spot.choices else ""
        return InvalidRequestError(
            f"Invalid type for '{param}': expected {wanted}{got}.{valid}",
            param=param,
            code="invalid_type",
        )
    if (bound := _BOUND.match(message)) is not None:
        kind = "integer" if bound["kind"] == "int" else "decimal"
        low = bound["op"][0] == ">"
        what = "below minimum" if low else "above maximum"
        got = f", but got {sent} instead" if sent else ""
        return InvalidRequestError(
            f"Invalid '{param}': {kind} {what} value. "
            f"Expected a value {bound['op']} {bound['limit']}{got}.",
            param=param,
            code=f"{kind}_{'below_min' if low else 'above_max'}_value",
        )
    if (length := _LENGTH.match(message)) is not None:
        return _bad_length(param, length, spot.value, at_key)
    if (pattern := _PATTERN.match(message)) is not None:
        got = f", but got {sent} instead" if sent else ""
        where = f"key in '{param}'" if at_key else f"'{param}'"
        return InvalidRequestError(
            f"Invalid {where}: expected a string matching the pattern {pattern['pattern']}{got}.",
            param=param,
            code="invalid_value",
        )
    if (choice := _CHOICE.match(message)) is not None:
        valid = f" Supported values are: {listed(spot.choices)}." if spot.choices else ""
        return InvalidRequestError(
            f"Invalid value for '{param}': {sent or choice['value']}.{valid}",
            param=param,
            code="invalid_value",
        )
    if message == "Number out of range":
        return InvalidRequestError(
            f"Invalid '{param}': number out of range. "
            "Expected a number that fits in a 64-bit float.",
            param=param,
            code="invalid_value",
        )
    return InvalidRequestError(f"Invalid value for '{param}': {message}.", param=param)


def _bad_length(param: str, match: re.Match[str], value: Any, at_key: bool) -> InvalidRequestError:
    kind, limit, low = match["kind"], int(match["n"]), match["op"] == ">="
    size = len(value) if isinstance(value, (str, list, dict)) else None
    if kind == "array" and low and size == 0:
        return InvalidRequestError(
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{limit}, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    bound = "minimum" if low else "maximum"
    side = "below_min" if low else "above_max"
    if kind == "object":
        got = f", but got {size} instead" if size is not None else ""
        return InvalidRequestError(
            f"Invalid '{param}': too {'few' if low else 'many'} keys. "
            f"Expected an object with {'at least' if low else 'at most'} {limit} keys{got}.",
            param=param,
            code=f"object_{side}_size",
        )
    noun = "key" if at_key else {"str": "string", "array": "array"}[kind]
    what = f"key {shown(value)}" if at_key else noun
    got = f", but got {size} instead" if size is not None else ""
    return InvalidRequestError(
        f"Invalid '{param}': {what} too {'short' if low else 'long'}. "
        f"Expected {'an' if noun == 'array' else 'a'} {noun} with {bound} length {limit}{got}.",
        param=param,
        code=f"{'array' if kind == 'array' else 'string'}_{side}_length",
    )


def _document(body: bytes | bytearray | memoryview | None) -> Any:
    """The body as plain JSON values, or ``_NOTHING`` when it is not to hand."""
    if body is None:
        return _NOTHING
    try:
        return msgspec.json.decode(body)
    except UNREADABLE:
        return _NOTHING


def _locate(path: str, at_key: bool, doc: Any, root: Any) -> _Spot:
    """Follow msgspec's ``path`` through the model and the document together.

    Where the model cannot be followed (the value is of no expected type), the
    type becomes ``None`` and only the path is carried on.
    """
    param, tp, value = "", root, doc
    for step in _SEGMENT.finditer(path):
        tp = _narrow(tp, value)
        name, index = step["name"], step["index"]
        if name is not None:
            param = f"{param}.{name}" if param else name
            tags = _tags(tp, name)
            if tags:
                return _Spot(param, None, tags, _get(value, name))
            tp, value = _field(tp, name), _get(value, name)
        elif index == "...":
            key, tp, value = _entry(tp, value)
            if key is None:
                param += "[...]"
            else:
                param += _key_step(key)
        else:
            param += f"[{index}]"
            tp = _item(tp)
            value = value[int(index)] if isinstance(value, list) else _NOTHING
    tp = _narrow(tp, value)
    if at_key:
        bad = _NOTHING
        if isinstance(value, dict) and get_origin(tp) is dict:
            key_type = get_args(tp)[0]
            bad = next((k for k in value if not _fits(k, key_type)), _NOTHING)
        return _Spot(param, tp, (), bad)
    return _Spot(param, tp, _literals(tp), value)


def _key_step(key: str) -> str:
    """A dict entry in a ``param``: ``.50256``, or ``["a key"]`` when not a plain word."""
    return f".{key}" if _PLAIN_KEY.match(key) else f"[{msgspec.json.encode(key).decode()}]"


def key_param(key: str) -> str:
    """A top-level key as a ``param``: ``top_k``, or ``["a key"]`` when not a plain word."""
    return _key_step(key).removeprefix(".")


def _strip(tp: Any) -> Any:
    """``Annotated[T, ...]`` becomes ``T``."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    """The members of a union other than ``UNSET`` and ``None``; ``[tp]`` otherwise."""
    tp = _strip(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [_strip(a) for a in get_args(tp) if a not in (UnsetType, type(None))]
    return [tp]


def _structs(members: list[Any]) -> list[type[msgspec.Struct]]:
    return [m for m in members if isinstance(m, type) and issubclass(m, msgspec.Struct)]


def _narrow(tp: Any, value: Any) -> Any:
    """The member of a union that ``value`` is meant to be, when it can be told."""
    members = _members(tp)
    if len(members) == 1:
        return members[0]
    if isinstance(value, dict):
        structs = _structs(members)
        for struct in structs:
            config = struct.__struct_config__
            if config.tag_field is not None and value.get(config.tag_field) == config.tag:
                return struct
        if len(structs) == 1:
            return structs[0]
        dicts = [m for m in members if get_origin(m) is dict]
        if dicts and not structs:
            return dicts[0]
    elif isinstance(value, list):
        lists = [m for m in members if get_origin(_strip(m)) is list]
        if len(lists) == 1:
            return lists[0]
    return Union[tuple(members)]  # noqa: UP007


def _tags(tp: Any, field: str) -> tuple[object, ...]:
    """The tags of a tagged union whose tag field is ``field``; empty otherwise."""
    structs = _structs(_members(tp))
    return tuple(s.__struct_config__.tag for s in structs if s.__struct_config__.tag_field == field)


def _field(tp: Any, name: str) -> Any:
    """The type of a struct's field named ``name`` on the wire, or ``None``."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        for field in msgspec.structs.fields(tp):
            if field.encode_name == name:
                return field.type
    return None


def _item(tp: Any) -> Any:
    """The item type of a list type, or ``None``."""
    tp = _strip(tp)
    return get_args(tp)[0] if get_origin(tp) is list else None


def _entry(tp: Any, value: Any) -> tuple[str | None, Any, Any]:
    """The first entry of a dict whose value does not fit: key, value type, value."""
    tp = _strip(tp)
    if get_origin(tp) is not dict or not isinstance(value, dict):
        return None, None, _NOTHING
    key_type, value_type = get_args(tp)
    for key, item in value.items():
        if _fits(key, key_type) and not _fits(item, value_type):
            return key, value_type, item
    return None, value_type, _NOTHING


def _get(value: Any, name: str) -> Any:
    return value.get(name, _NOTHING) if isinstance(value, dict) else _NOTHING


def _fits(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError:
        return False
    return True


def _literals(tp: Any) -> tuple[object, ...]:
    """The values a ``Literal`` (or a union holding some) allows."""
    return tuple(_each_literal(tp))


def _each_literal(tp: Any) -> Iterator[object]:
    for member in _members(tp):
        if get_origin(member) is Literal:
            yield from get_args(member)
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            yield from (item.value for item in member)


def shown(value: Any) -> str:
    """A short JSON rendering of what the client sent, for a message."""
    if value is _NOTHING:
        return ""
    text = msgspec.json.encode(value).decode()
    if isinstance(value, str):
        text = f"'{text[1:-1]}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str | None:
    """msgspec's name for the JSON type of ``value``."""
    if value is _NOTHING:
        return None
    if value is None:
        return "null"
    for kind, types_ in _KINDS:
        if isinstance(value, types_):
            return kind
    return None


_KINDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("bool", bool),
    ("int", int),
    ("float", float),
    ("str", str),
    ("array", list),
    ("object", dict),
)


def listed(values: tuple[object, ...], last: str = "and") -> str:
    return _or([shown(v) for v in values], last)


def _or(words: list[str], last: str = "or") -> str:
    if len(words) <= 2:
        return f" {last} ".join(words)
    return ", ".join(words[:-1]) + f", {last} " + words[-1]
