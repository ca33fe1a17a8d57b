"""A forced call's answer is held to the tool's schema in full, on every backend that emulates it.

Through the server with the official ``openai`` SDK, against the loopback
Ollama and agent stand-ins: an answer that fits the pydantic-generated schema
(``$defs``, ``$ref``, ``Optional`` as ``anyOf`` with null) is the call; one
that does not, anywhere in it, is a 502 naming the backend and the place, for
a complete answer and a stream alike. A schema that cannot be checked against
is a 400 at the tool's ``parameters``, and the backend is never called.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel

from tests.client_stand import Stand, client, stand
from translator import _json_schema as json_schema
from translator._json_schema.cache import CostBoundedCache
from translator._json_schema.patterns import PATTERN_MEMORY
from translator._json_schema.size import VALUES

__all__ = ["client", "stand"]

BACKENDS = ["ollama", "agent"]
MESSAGES: list[Any] = [{"role": "user", "content": "Who lives where, with which pets?"}]


class Address(BaseModel):
    street: str
    city: str
    zip: str | None


class Pet(BaseModel):
    kind: Literal["cat", "dog"]
    name: str


class Owner(BaseModel):
    name: str
    home: Address
    previous: Address | None
    pets: list[Pet]


OWNER_TOOL: Any = openai.pydantic_function_tool(Owner)
FORCE_OWNER: Any = {"type": "function", "function": {"name": "Owner"}}
RIGHT = {
    "name": "Ada",
    "home": {"street": "1 Main St", "city": "London", "zip": None},
    "previous": None,
    "pets": [{"kind": "cat", "name": "Tom"}],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(RIGHT)), **changes}


WRONG = {
    "wrong type deep inside": (
        _with(home={"street": "1 Main St", "city": 7, "zip": None}),
        "$.home.city",
    ),
    "nested required property missing": (
        _with(home={"street": "1 Main St", "zip": None}),
        "$.home lacks 'city'",
    ),
    "enum value not allowed": (_with(pets=[{"kind": "fish", "name": "Nemo"}]), "$.pets[0].kind"),
    "optional neither null nor an address": (_with(previous="nowhere"), "$.previous"),
    "a property the schema does not allow": (_with(age=36), "$"),
}


def _refusal(exc: openai.APIStatusError, backend: str) -> str:
    assert exc.status_code == 502
    message = exc.message
    assert backend in message
    assert "Owner" in message
    assert "Traceback" not in exc.response.text
    return message


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_answer_that_fits_the_schema_is_the_call(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str
) -> None:
    helpers, _ = stand
    assert "$defs" in OWNER_TOOL["function"]["parameters"]  # a $ref'd schema, as pydantic makes
    for value in (None, RIGHT):  # the stand-in's own answer (every Optional set), then nulls
        if value is not None:
            helpers.answer_json(backend, value)
        done = await client.chat.completions.parse(
            model=backend, messages=MESSAGES, tools=[OWNER_TOOL], tool_choice=FORCE_OWNER
        )
        (call,) = done.choices[0].message.tool_calls or []
        assert isinstance(call.function.parsed_arguments, Owner)
    assert call.function.parsed_arguments == Owner.model_validate(RIGHT)


@pytest.mark.parametrize("case", sorted(WRONG))
@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_answer_that_does_not_fit_is_a_502_saying_where(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str, case: str
) -> None:
    helpers, _ = stand
    value, where = WRONG[case]
    helpers.answer_json(backend, value)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=[OWNER_TOOL], tool_choice=FORCE_OWNER
        )
    assert where in _refusal(caught.value, backend)
    assert helpers.calls(backend) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_stream_is_checked_before_it_starts(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str
) -> None:
    helpers, _ = stand
    value, where = WRONG["wrong type deep inside"]
    helpers.answer_json(backend, value)
    with pytest.raises(openai.APIStatusError) as caught:
        async with client.chat.completions.stream(
            model=backend, messages=MESSAGES, tools=[OWNER_TOOL], tool_choice=FORCE_OWNER
        ) as stream:
            await stream.get_final_completion()
    assert where in _refusal(caught.value, backend)
    helpers.answer_json(backend, RIGHT)
    async with client.chat.completions.stream(
        model=backend, messages=MESSAGES, tools=[OWNER_TOOL], tool_choice=FORCE_OWNER
    ) as stream:
        final = await stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == Owner.model_validate(RIGHT)


OTHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "Pet", "parameters": Pet.model_json_schema()},
}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_required_checks_the_choice_then_the_chosen_tools_schema(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str
) -> None:
    helpers, _ = stand
    tools = [OWNER_TOOL, OTHER_TOOL]
    wrong = {
        "no such function": ({"name": "Nobody", "arguments": RIGHT}, "no function"),
        "arguments not an object": ({"name": "Owner", "arguments": "Ada"}, "$.arguments"),
        "arguments wrong deep inside": (
            {"name": "Owner", "arguments": WRONG["wrong type deep inside"][0]},
            "$.arguments.home.city",
        ),
        "the other tool's enum": (
            {"name": "Pet", "arguments": {"kind": "fish", "name": "Nemo"}},
            "$.arguments.kind",
        ),
    }
    for value, where in wrong.values():
        helpers.answer_json(backend, value)
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model=backend, messages=MESSAGES, tools=tools, tool_choice="required"
            )
        assert where in _refusal(caught.value, backend)
    helpers.answer_json(backend, {"name": "Pet", "arguments": {"kind": "dog", "name": "Rex"}})
    done = await client.chat.completions.create(
        model=backend, messages=MESSAGES, tools=tools, tool_choice="required"
    )
    (call,) = done.choices[0].message.tool_calls or []
    assert call.function.name == "Pet"
    assert Pet.model_validate_json(call.function.arguments) == Pet(kind="dog", name="Rex")


def _tool(name: str, parameters: Any) -> Any:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


UNCHECKABLE = {
    "an unknown type": {"type": "object", "properties": {"a": {"type": "strin"}}},
    "a keyword of the wrong kind": {"type": "object", "properties": 5},
    "multipleOf zero": {"type": "object", "properties": {"n": {"multipleOf": 0}}},
    "a $ref to nothing": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
    "a pattern Python cannot read": {"type": "string", "pattern": "(unclosed"},
    "too large to compile quickly": {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(VALUES)},
    },
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", sorted(UNCHECKABLE))
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_schema_that_cannot_be_checked_is_a_400_before_the_backend_is_called(
    stand: tuple[Stand, str],
    client: openai.AsyncOpenAI,
    backend: str,
    case: str,
    stream: bool,
) -> None:
    helpers, _ = stand
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=backend,
            messages=MESSAGES,
            tools=[_tool("f", UNCHECKABLE[case])],
            tool_choice={"type": "function", "function": {"name": "f"}},
            stream=stream,
        )
    assert caught.value.param == "tools[0].function.parameters"
    assert caught.value.code == "invalid_function_parameters"
    assert "'f'" in caught.value.message
    assert helpers.calls(backend) == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_required_names_the_tool_whose_schema_cannot_be_checked(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str
) -> None:
    helpers, _ = stand
    tools = [OWNER_TOOL, OTHER_TOOL, _tool("g", {"type": "object", "required": "a"})]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=tools, tool_choice="required"
        )
    assert caught.value.param == "tools[2].function.parameters"
    assert helpers.calls(backend) == 0


def _coded(n: int) -> Any:
    """The ``n``-th of many distinct schemas: a code that starts with ``n``."""
    code = {"type": "string", "pattern": f"^{n}-[a-z]+$"}
    parameters = {"type": "object", "properties": {"code": code}, "required": ["code"]}
    return _tool("f", parameters)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_many_distinct_schemas_are_each_held_to_their_own_as_others_are_dropped(
    stand: tuple[Stand, str],
    client: openai.AsyncOpenAI,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    helpers, _ = stand
    cache = CostBoundedCache[bytes, Any](3 * PATTERN_MEMORY)  # room for two such schemas
    monkeypatch.setattr(json_schema, "_cache", cache)
    force: Any = {"type": "function", "function": {"name": "f"}}
    for n in [*range(8), *range(8)]:  # the second round: each was dropped, compiled again
        helpers.answer_json(backend, {"code": f"{n + 1}-abc"})
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model=backend, messages=MESSAGES, tools=[_coded(n)], tool_choice=force
            )
        assert caught.value.status_code == 502
        assert "$.code" in caught.value.message
        helpers.answer_json(backend, {"code": f"{n}-abc"})
        done = await client.chat.completions.create(
            model=backend, messages=MESSAGES, tools=[_coded(n)], tool_choice=force
        )
        (call,) = done.choices[0].message.tool_calls or []
        assert json.loads(call.function.arguments) == {"code": f"{n}-abc"}
        assert 0 < len(cache) <= 2
    assert cache.cost <= 3 * PATTERN_MEMORY


class _SchemaHost:
    """An HTTP server on loopback, in a thread of its own (a fetch from the server's
    event loop would block it): it serves a schema, and notes each request."""

    def __init__(self) -> None:
        fetched = self.fetched = list[str]()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fetched.append(self.path)
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/schema.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _SchemaHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_ref_outside_the_schema_is_refused_and_never_fetched(
    stand: tuple[Stand, str], client: openai.AsyncOpenAI, backend: str
) -> None:
    helpers, _ = stand
    with _SchemaHost() as host:
        parameters = {"type": "object", "properties": {"a": {"$ref": host.url}}}
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model=backend,
                messages=MESSAGES,
                tools=[_tool("f", parameters)],
                tool_choice={"type": "function", "function": {"name": "f"}},
            )
    assert caught.value.param == "tools[0].function.parameters"
    assert host.url in caught.value.message
    assert host.fetched == []
    assert helpers.calls(backend) == 0
