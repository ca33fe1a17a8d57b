"""Forced tool calls answered through a JSON schema, for backends that cannot force one.

Structured output in the frameworks built on the OpenAI SDK is a forced tool
call: ``tool_choice: {"type": "function", "function": {"name": ...}}``
(LangChain's ``function_calling``, instructor's ``TOOLS``), or ``"required"``
(pydantic-ai). A backend that can hold its answer to a JSON schema but cannot
be made to call a tool does it this way:

1. :func:`forced_call` reads what the request forces. One function: the schema
   is that function's ``parameters``. ``"required"`` with several functions:
   the schema is a choice of objects ``{"name": <one of them>, "arguments":
   <its parameters>}``; with one function, as if it were named.
2. The backend asks for an answer in :attr:`ForcedCall.schema`, with
   :attr:`ForcedCall.instruction` for the model, and without the tools.
3. :func:`answer_as_call` turns the answer into that tool call:
   ``finish_reason: "tool_calls"``, a fresh call id, ``arguments`` as JSON
   text. The answer is checked first, in full, against the function's
   ``parameters`` (for a choice: that it is ``{"name", "arguments"}`` naming
   a function of the request, then its arguments against that function's
   schema); one that does not fit is a 502 naming the backend and saying
   where and why, never a broken call. Streaming: the call is one tool-call
   delta (see :func:`translator._streaming.chunks_from_response`), so a stream
   is checked whole before it starts.

The schemas are compiled when the request is read (:func:`forced_call`), once
per distinct schema (see :mod:`translator._json_schema`): one that cannot be
checked against is a 400 at ``tools[i].function.parameters`` before the
backend is called.

``parallel_tool_calls: false`` and ``strict: true`` are kept by construction:
one call, of arguments held to the schema.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET

from ._json_schema import SchemaCheck, SchemaError, schema_check
from ._model import (
    ChatRequest,
    ChatResponse,
    FunctionCall,
    FunctionTool,
    FunctionToolCall,
    NamedFunctionChoice,
    ResponseMessage,
)
from ._openai import new_completion_id
from .errors import InvalidRequestError, MalformedUpstreamError

__all__ = ["ForcedCall", "answer_as_call", "forced_call"]

ANY_OBJECT: Final = b'{"type":"object"}'
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.encode


class ForcedCall(msgspec.Struct, frozen=True):
    """The call a request forces: which functions, and the schema of the answer."""

    tools: tuple[FunctionTool, ...]
    """The function to call, or those among which the answer chooses."""
    schema: msgspec.Raw
    """The JSON schema to hold the backend's answer to."""
    checks: tuple[SchemaCheck, ...]
    """Each tool's ``parameters``, compiled: its arguments are checked against it."""

    @property
    def chooses(self) -> bool:
        """Whether the answer names its function (``{"name", "arguments"}``)."""
        return len(self.tools) > 1

    @property
    def instruction(self) -> str:
        """What to tell the model: which call it answers, and the shape of its answer."""
        described = "; ".join(
            f"`{t.function.name}`"
            + (f" ({t.function.description})" if isinstance(t.function.description, str) else "")
            for t in self.tools
        )
        if self.chooses:
            return (
                f"Call one of these functions: {described}. Answer with a JSON object "
                '{"name": <the function>, "arguments": <its arguments>} and nothing else.'
            )
        return (
            f"Call the function {described}. Answer with its arguments as a JSON object "
            "and nothing else."
        )


def forced_call(request: ChatRequest) -> ForcedCall | None:
    """The call ``request`` forces (a named function, or ``"required"``), or None.

    Raises :class:`InvalidRequestError` (400) for a forced function whose
    ``parameters`` cannot be checked against.
    """
    choice = request.tool_choice
    tools = request.tools
    if choice is UNSET or tools is UNSET or not tools:
        return None
    functions = [(k, t) for k, t in enumerate(tools) if isinstance(t, FunctionTool)]
    if isinstance(choice, NamedFunctionChoice):
        wanted = choice.function.name
        named = next(((k, t) for k, t in functions if t.function.name == wanted), None)
        return None if named is None else _single(*named)
    if choice != "required" or not functions:
        return None
    if len(functions) == 1:
        return _single(*functions[0])
    schemas = [_parameters(t) for _, t in functions]
    checks = tuple(_check(k, t, schema) for (k, t), schema in zip(functions, schemas, strict=True))
    options = b",".join(
        b'{"type":"object","properties":{"name":{"type":"string","enum":'
        + _encode([t.function.name])
        + b'},"arguments":'
        + schema
        + b'},"required":["name","arguments"]}'
        for (_, t), schema in zip(functions, schemas, strict=True)
    )
    chosen = tuple(t for _, t in functions)
    return ForcedCall(chosen, msgspec.Raw(b'{"anyOf":[' + options + b"]}"), checks)


def _single(k: int, tool: FunctionTool) -> ForcedCall:
    schema = _parameters(tool)
    return ForcedCall((tool,), msgspec.Raw(schema), (_check(k, tool, schema),))


def _parameters(tool: FunctionTool) -> bytes:
    parameters = tool.function.parameters
    return ANY_OBJECT if parameters is UNSET else bytes(parameters)


def _check(k: int, tool: FunctionTool, schema: bytes) -> SchemaCheck:
    """The compiled ``schema`` of ``tools[k]``; a 400 there if it cannot be."""
    try:
        return schema_check(schema)
    except SchemaError as exc:
        name = tool.function.name
        raise InvalidRequestError(
            f"Invalid schema for function '{name}': {exc}",
            param=f"tools[{k}].function.parameters",
            code="invalid_function_parameters",
        ) from None


def answer_as_call(response: ChatResponse, forced: ForcedCall, backend: str) -> ChatResponse:
    """``response`` with its text answer turned into the forced tool call (in place).

    Raises :class:`MalformedUpstreamError` (502) when the text is not such a call.
    """
    choice = response.choices[0]
    text = choice.message.content or ""
    name, arguments = _call_of(text, forced, backend)
    call = FunctionToolCall(new_completion_id("call_"), FunctionCall(name, arguments))
    choice.message = ResponseMessage(content=None, tool_calls=[call])
    choice.finish_reason = "tool_calls"
    return response


def _call_of(text: str, forced: ForcedCall, backend: str) -> tuple[str, str]:
    """The function name and the arguments (JSON text) the answer ``text`` holds."""
    try:
        value: Any = _decode(text)
    except msgspec.DecodeError:
        raise _not_a_call(backend, forced, "it is not JSON") from None
    except RecursionError:
        raise _not_a_call(backend, forced, "it is nested too deeply to be read") from None
    if not isinstance(value, dict):
        raise _not_a_call(backend, forced, "it is not a JSON object")
    if forced.chooses:
        name = value.get("name")
        index = next((i for i, t in enumerate(forced.tools) if t.function.name == name), None)
        if index is None:
            raise _not_a_call(backend, forced, "it names no function of the request")
        arguments = value.get("arguments")
        if not isinstance(arguments, dict):
            raise _not_a_call(backend, forced, "$.arguments is not a JSON object")
        _hold(forced.checks[index], arguments, "$.arguments", backend, forced)
        return forced.tools[index].function.name, _encode(arguments).decode()
    _hold(forced.checks[0], value, "$", backend, forced)
    return forced.tools[0].function.name, text.strip()


def _hold(check: SchemaCheck, value: Any, at: str, backend: str, forced: ForcedCall) -> None:
    wrong = check(value, at=at)
    if wrong is not None:
        raise _not_a_call(backend, forced, wrong)


def _not_a_call(backend: str, forced: ForcedCall, why: str) -> MalformedUpstreamError:
    names = ", ".join(t.function.name for t in forced.tools)
    return MalformedUpstreamError(
        f"The {backend} backend's answer is not a call of {names} ({why}), "
        "so the forced tool call could not be made.",
        backend=backend,
    )
