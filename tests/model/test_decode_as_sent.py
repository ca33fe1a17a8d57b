"""What clients replay decodes to the request sent without it; other mistakes are told the same.

The canonical model has no place for replayed output fields, ``tool_calls:
null`` or empty containers, so a body with them is decoded as it was sent and
settled (``translator._model.replayed``). What comes out must be the request a
client that never sent them gets, message classes included, and a body wrong
in some other way must get the same 400 whether or not it carries them too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from translator._model import AssistantMessage, ToolMessage, unknown_fields
from translator._model.request import replayed_fields
from translator._openai import decode_request
from translator.errors import InvalidRequestError

USER = {"role": "user", "content": "Hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
DUMPED = {  # ChatCompletionMessage.model_dump() of an answer
    "role": "assistant",
    "content": "Hello.",
    "refusal": None,
    "annotations": [],
    "audio": None,
    "function_call": None,
    "tool_calls": None,
}
PLAIN = {"role": "assistant", "content": "Hello.", "refusal": None, "audio": None}
PLAIN |= {"function_call": None}


def _body(messages: list[dict[str, Any]], **top: Any) -> bytes:
    return json.dumps({"model": "m", "messages": messages, **top}).encode()


SAME = [
    pytest.param(
        _body([USER, DUMPED, USER]),
        _body([USER, PLAIN, USER]),
        ["messages[1].annotations"],
        id="model_dump",
    ),
    pytest.param(
        _body([USER, {"role": "assistant", "content": "a", "reasoning_content": "r"}]),
        _body([USER, {"role": "assistant", "content": "a"}]),
        ["messages[1].reasoning_content"],
        id="reasoning_content",
    ),
    pytest.param(
        _body([{**DUMPED, "reasoning": {"summary": []}, "tool_calls": [CALL]}]),
        _body([{**PLAIN, "tool_calls": [CALL]}]),
        ["messages[0].annotations", "messages[0].reasoning"],
        id="reasoning",
    ),
    pytest.param(
        _body(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r", "name": "f"},
            ]
        ),
        _body(
            [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r"},
            ]
        ),
        ["messages[2].name"],
        id="tool_name",
    ),
    *(
        pytest.param(_body([USER], **{name: empty}), _body([USER]), [], id=f"{name}_empty")
        for name, empty in [
            ("stop", []),
            ("tools", []),
            ("functions", []),
            ("logit_bias", {}),
            ("metadata", {}),
            ("modalities", []),
        ]
    ),
    pytest.param(
        _body([USER], tools=None, tool_choice=None, stop=[], temperature=None),
        _body([USER], temperature=None),
        [],
        id="nulls_and_empties",
    ),
    pytest.param(
        _body([USER, DUMPED, USER], top_k=3, tools=None, logit_bias={}),
        _body([USER, PLAIN, USER], top_k=3),
        ["messages[1].annotations"],
        id="with_an_unknown_field",
    ),
]


@pytest.mark.parametrize(("sent", "plain", "paths"), SAME)
def test_a_body_with_what_clients_replay_is_the_request_without_it(
    sent: bytes, plain: bytes, paths: list[str]
) -> None:
    got, want = decode_request(sent), decode_request(plain)
    assert got == want
    assert [type(m) for m in got.messages] == [type(m) for m in want.messages]
    assert replayed_fields(got) == paths
    assert replayed_fields(want) == []
    assert {k: bytes(v) for k, v in unknown_fields(got).items()} == {
        k: bytes(v) for k, v in unknown_fields(want).items()
    }


def test_replayed_messages_are_the_model_s_own_classes() -> None:
    request = decode_request(
        _body(
            [
                USER,
                {**DUMPED, "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r", "name": "f"},
            ]
        )
    )
    assistant, tool = request.messages[1:]
    assert type(assistant) is AssistantMessage
    assert type(tool) is ToolMessage
    assert not hasattr(assistant, "annotations")
    assert not hasattr(tool, "name")


def _error(body: bytes) -> tuple[int, str | None, str | None, str]:
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(body)
    exc = caught.value
    # Where the JSON breaks is counted in characters, which the added fields shift.
    return exc.status, exc.param, exc.code, re.sub(r"\d+", "N", exc.message)


BAD_USER = {"role": "user", "content": 5}

WRONG = [
    pytest.param(
        _body([USER, DUMPED, BAD_USER]), _body([USER, PLAIN, BAD_USER]), id="content_after"
    ),
    pytest.param(_body([BAD_USER, DUMPED]), _body([BAD_USER, PLAIN]), id="content_before"),
    pytest.param(
        _body([USER, DUMPED, {**USER, "foo": 1}]),
        _body([USER, PLAIN, {**USER, "foo": 1}]),
        id="unknown_key_in_a_message",
    ),
    pytest.param(
        _body([USER, DUMPED], stop=[], temperature=9),
        _body([USER, PLAIN], temperature=9),
        id="out_of_range_after_an_empty_container",
    ),
    pytest.param(
        _body([USER], temperature=9, metadata={}),
        _body([USER], temperature=9),
        id="out_of_range_before_an_empty_container",
    ),
    pytest.param(
        _body([{"role": "tool", "content": "r", "name": "f"}]),
        _body([{"role": "tool", "content": "r"}]),
        id="missing_tool_call_id",
    ),
    pytest.param(
        _body([USER, {"role": "tool", "tool_call_id": "c", "content": "r", "name": "f"}]),
        _body([USER, {"role": "tool", "tool_call_id": "c", "content": "r"}]),
        id="tool_answering_no_call",
    ),
    pytest.param(
        _body([USER, DUMPED], stop=[])[:-1] + b',"x',
        _body([USER, PLAIN])[:-1] + b',"x',
        id="unreadable_after_an_empty_container",
    ),
    pytest.param(
        _body([USER, DUMPED], top_k=1)[:-1] + b",}",
        _body([USER, PLAIN], top_k=1)[:-1] + b",}",
        id="unreadable_after_an_unknown_field",
    ),
]


@pytest.mark.parametrize(("sent", "plain"), WRONG)
def test_a_wrong_body_is_told_the_same_with_or_without_what_clients_replay(
    sent: bytes, plain: bytes
) -> None:
    assert _error(sent) == _error(plain)


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "tool", "tool_call_id": "c", "content": "r", "name": 5}, "messages[1].name"),
        ({"role": "assistant", "content": "a", "tool_calls": 5}, "messages[1].tool_calls"),
    ],
)
def test_a_replayed_field_of_the_wrong_type_is_refused_at_its_place(
    message: dict[str, Any], param: str
) -> None:
    status, got, code, _ = _error(_body([USER, message]))
    assert (status, got, code) == (400, param, "invalid_type")
