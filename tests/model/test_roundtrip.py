"""Decoding then re-encoding a request loses nothing the client sent.

Requests are generated over the model's whole shape (every role, every part,
every tool and tool choice form, every optional field, the VLM extensions and
unknown top-level fields), sent as JSON, decoded and encoded back. The result
must hold everything that was sent, unchanged; the only additions allowed are
the defaults the model documents for ``vlmrun.metadata``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from translator._model import ChatRequest
from translator._model.replayed import EMPTY_IS_ABSENT, NULL_IS_ABSENT
from translator._openai import decode_request, encode_request
from translator.errors import InvalidRequestError

Json = Any

METADATA_DEFAULTS = {
    "environment": "prod",
    "session_id": None,
    "allow_training": True,
    "allow_retention": True,
    "allow_logging": True,
    "extra": None,
}

text = st.text(max_size=12)
name = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
url = st.one_of(
    st.just("data:image/png;base64,iVBORw0KGgo="),
    st.builds("https://example.test/{}".format, st.text("abc/._-", max_size=10)),
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
json_object = st.dictionaries(text, json_value, max_size=3)


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    return st.fixed_dictionaries(required, optional=optional or {})


def unit(low: float, high: float) -> Any:
    return st.one_of(
        st.floats(low, high, allow_nan=False), st.integers(int(low), int(high)), st.none()
    )


breakpoint_ = obj({"mode": st.just("explicit")}, {"ttl": st.sampled_from(["30m", "12h"])})
cache = {"prompt_cache_breakpoint": breakpoint_}
text_part = obj({"type": st.just("text"), "text": text}, cache)
refusal_part = obj({"type": st.just("refusal"), "refusal": text})
user_part = st.one_of(
    text_part,
    obj(
        {
            "type": st.just("image_url"),
            "image_url": obj(
                {"url": url}, {"detail": st.sampled_from(["auto", "low", "high", "original"])}
            ),
        },
        cache,
    ),
    obj(
        {
            "type": st.just("input_audio"),
            "input_audio": obj({"data": text, "format": st.sampled_from(["wav", "mp3"])}),
        },
        cache,
    ),
    obj(
        {
            "type": st.just("file"),
            "file": obj({}, {"file_data": text, "file_id": text, "filename": text}),
        },
        cache,
    ),
    obj({"type": st.just("input_file"), "file_id": text}),
    obj({"type": st.just("video_url"), "video_url": obj({"url": url})}),
    obj({"type": st.just("audio_url"), "audio_url": obj({"url": url})}),
    obj({"type": st.just("file_url"), "file_url": obj({"url": url})}),
)
texts = st.one_of(text, st.lists(text_part, max_size=3))
tool_call = st.one_of(
    obj(
        {
            "id": text,
            "type": st.just("function"),
            "function": obj({"name": text, "arguments": text}),
        }
    ),
    obj({"id": text, "type": st.just("custom"), "custom": obj({"name": text, "input": text})}),
)
message = st.one_of(
    obj({"role": st.just("system"), "content": texts}, {"name": text}),
    obj({"role": st.just("developer"), "content": texts}, {"name": text}),
    obj(
        {"role": st.just("user"), "content": st.one_of(text, st.lists(user_part, max_size=4))},
        {"name": text},
    ),
    obj(
        {"role": st.just("assistant")},
        {
            "content": st.one_of(
                st.none(), text, st.lists(st.one_of(text_part, refusal_part), max_size=3)
            ),
            "refusal": st.one_of(st.none(), text),
            "tool_calls": st.lists(tool_call, max_size=2),
            "function_call": st.one_of(st.none(), obj({"name": text, "arguments": text})),
            "audio": st.one_of(st.none(), obj({"id": text})),
            "name": text,
        },
    ),
    obj({"role": st.just("tool"), "content": texts, "tool_call_id": text}),
    obj({"role": st.just("function"), "content": st.one_of(st.none(), text), "name": text}),
)
function = obj(
    {"name": name},
    {"description": text, "parameters": json_object, "strict": st.one_of(st.none(), st.booleans())},
)
tool = st.one_of(
    obj({"type": st.just("function"), "function": function}),
    obj(
        {
            "type": st.just("custom"),
            "custom": obj(
                {"name": text},
                {
                    "description": text,
                    "format": st.one_of(
                        obj({"type": st.just("text")}),
                        obj(
                            {
                                "type": st.just("grammar"),
                                "grammar": obj(
                                    {
                                        "definition": text,
                                        "syntax": st.sampled_from(["lark", "regex"]),
                                    }
                                ),
                            }
                        ),
                    ),
                },
            ),
        }
    ),
)
tool_choice = st.one_of(
    st.sampled_from(["none", "auto", "required"]),
    obj({"type": st.just("function"), "function": obj({"name": text})}),
    obj({"type": st.just("custom"), "custom": obj({"name": text})}),
    obj(
        {
            "type": st.just("allowed_tools"),
            "allowed_tools": obj(
                {
                    "mode": st.sampled_from(["auto", "required"]),
                    "tools": st.lists(json_object, max_size=2),
                }
            ),
        }
    ),
)
response_format = st.one_of(
    obj({"type": st.just("text")}),
    obj({"type": st.just("json_object")}),
    obj(
        {
            "type": st.just("json_schema"),
            "json_schema": obj(
                {"name": name},
                {
                    "description": text,
                    "schema": json_object,
                    "strict": st.one_of(st.none(), st.booleans()),
                },
            ),
        }
    ),
)


def maybe_null(strategy: Any) -> Any:
    return st.one_of(st.none(), strategy)


moderation_mode = maybe_null(obj({"mode": st.sampled_from(["score", "block"])}))
OPTIONAL: dict[str, Any] = {
    "audio": maybe_null(
        obj(
            {
                "format": st.sampled_from(["wav", "aac", "mp3", "flac", "opus", "pcm16"]),
                "voice": st.one_of(text, obj({"id": text})),
            }
        )
    ),
    "frequency_penalty": unit(-2, 2),
    "function_call": st.one_of(st.sampled_from(["none", "auto"]), obj({"name": text})),
    "functions": st.lists(function, min_size=1, max_size=2),
    "logit_bias": maybe_null(
        st.dictionaries(st.from_regex(r"[0-9]{1,6}", fullmatch=True), st.integers(-100, 100))
    ),
    "logprobs": maybe_null(st.booleans()),
    "max_completion_tokens": maybe_null(st.integers(1, 10**6)),
    "max_tokens": maybe_null(st.integers(1, 10**6)),
    "metadata": maybe_null(
        st.dictionaries(st.text(max_size=64), st.text(max_size=20), max_size=16)
    ),
    "modalities": maybe_null(st.lists(st.sampled_from(["text", "audio"]), max_size=2)),
    "moderation": maybe_null(
        obj(
            {"model": text},
            {"policy": maybe_null(obj({}, {"input": moderation_mode, "output": moderation_mode}))},
        )
    ),
    "n": maybe_null(st.integers(1, 128)),
    "parallel_tool_calls": st.booleans(),
    "prediction": maybe_null(obj({"type": st.just("content"), "content": texts})),
    "presence_penalty": unit(-2, 2),
    "prompt_cache_key": maybe_null(text),
    "prompt_cache_options": obj(
        {}, {"mode": st.sampled_from(["implicit", "explicit"]), "ttl": st.just("30m")}
    ),
    "prompt_cache_retention": maybe_null(st.sampled_from(["in_memory", "24h"])),
    "reasoning_effort": maybe_null(
        st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"])
    ),
    "response_format": response_format,
    "safety_identifier": maybe_null(st.text(max_size=128)),
    "seed": maybe_null(st.integers(-(2**63), 2**63 - 1)),
    "service_tier": maybe_null(
        st.sampled_from(["auto", "default", "flex", "scale", "priority", "fast"])
    ),
    "stop": st.one_of(st.none(), text, st.lists(text, max_size=4)),
    "store": maybe_null(st.booleans()),
    "stream": maybe_null(st.booleans()),
    "stream_options": maybe_null(
        obj({}, {"include_usage": st.booleans(), "include_obfuscation": st.booleans()})
    ),
    "temperature": unit(0, 2),
    "tool_choice": tool_choice,
    "tools": st.lists(tool, max_size=3),
    "top_logprobs": maybe_null(st.integers(0, 20)),
    "top_p": unit(0, 1),
    "user": text,
    "verbosity": maybe_null(st.sampled_from(["low", "medium", "high"])),
    "web_search_options": obj(
        {},
        {
            "search_context_size": st.sampled_from(["low", "medium", "high"]),
            "user_location": maybe_null(
                obj(
                    {
                        "type": st.just("approximate"),
                        "approximate": obj(
                            {}, {"city": text, "country": text, "region": text, "timezone": text}
                        ),
                    }
                )
            ),
        },
    ),
    "session_id": maybe_null(text),
    "vlmrun": obj(
        {},
        {
            "domain": text,
            "metadata": obj(
                {},
                {
                    "environment": st.sampled_from(["dev", "staging", "prod"]),
                    "session_id": maybe_null(text),
                    "allow_training": st.booleans(),
                    "allow_retention": st.booleans(),
                    "allow_logging": st.booleans(),
                    "extra": maybe_null(json_object),
                },
            ),
        },
    ),
}
KNOWN = frozenset(ChatRequest.__struct_encode_fields__)
unknown = st.dictionaries(text.filter(lambda k: k not in KNOWN), json_value, max_size=3)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Json]:
    body: dict[str, Json] = draw(
        obj(
            {
                "model": st.text(min_size=1, max_size=12),
                "messages": st.lists(message, min_size=1, max_size=4),
            },
            OPTIONAL,
        )
    )
    _follow_the_rules(body, draw)
    body.update(draw(unknown))
    return body


def _follow_the_rules(body: dict[str, Json], draw: st.DrawFn) -> None:
    """Mend a drawn request so that it keeps OpenAI's cross-field rules."""
    if body.get("top_logprobs") is not None:
        body["logprobs"] = True
    choice = body.get("tool_choice", "none")
    if choice != "none":
        tools = body.setdefault("tools", [])
        if not tools:
            tools.append(draw(tool))
        if isinstance(choice, dict) and choice["type"] in ("function", "custom"):
            kind = choice["type"]
            names = [t[kind]["name"] for t in tools if t["type"] == kind]
            if not names:
                tools.append({"type": kind, kind: {"name": draw(name)}})
                names.append(tools[-1][kind]["name"])
            choice[kind]["name"] = draw(st.sampled_from(names))
    messages: list[Json] = []
    called: list[str] = []
    for sent in body["messages"]:
        if sent["role"] == "assistant":
            called += [call["id"] for call in sent.get("tool_calls", [])]
            said = [sent.get(k) for k in ("tool_calls", "function_call", "refusal", "audio")]
            content = sent.get("content")
            if not any(said) and not isinstance(sent.get("refusal"), str) and not content:
                sent["content"] = content if isinstance(content, str) else draw(text)
        elif sent["role"] == "tool" and sent["tool_call_id"] not in called:
            answered = {"name": "t", "input": ""}
            call = {"id": sent["tool_call_id"], "type": "custom", "custom": answered}
            messages.append({"role": "assistant", "tool_calls": [call]})
            called.append(call["id"])
        messages.append(sent)
    body["messages"] = messages


def test_the_generator_covers_every_model_field() -> None:
    assert set(OPTIONAL) | {"model", "messages"} == KNOWN


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests())
def test_decode_then_encode_loses_nothing(sent: dict[str, Json]) -> None:
    body = json.dumps(sent).encode()
    again = json.loads(encode_request(decode_request(body)))
    _assert_kept(sent, again, "")


def _asks_for_nothing(path: str, key: str, value: Json, sent: dict[str, Json]) -> bool:
    """Whether the replay policy (translator._model.replayed) leaves ``key`` out."""
    if path == "":
        return (value is None and key in NULL_IS_ABSENT) or (
            value in ([], {}) and key in EMPTY_IS_ABSENT
        )
    if path.startswith(".messages[") and path.count(".") == 1:
        names = {"assistant": ("annotations", "reasoning_content", "reasoning"), "tool": ("name",)}
        role = str(sent.get("role"))
        return key in names.get(role, ()) or (
            role == "assistant" and key == "tool_calls" and value is None
        )
    return False


def _assert_kept(sent: Json, got: Json, path: str) -> None:
    """``got`` holds everything in ``sent`` unchanged; numbers compare as numbers."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), path
        for key, value in sent.items():
            if _asks_for_nothing(path, key, value, sent):
                assert key not in got, f"{path}.{key} was kept"
                continue
            assert key in got, f"{path}.{key} was lost"
            _assert_kept(value, got[key], f"{path}.{key}")
        added = got.keys() - sent.keys()
        if added:
            assert path == ".vlmrun.metadata", f"{path} gained {sorted(added)}"
            assert {k: got[k] for k in added} == {k: METADATA_DEFAULTS[k] for k in added}
    elif isinstance(sent, list):
        assert isinstance(got, list), path
        assert len(got) == len(sent), path
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            _assert_kept(a, b, f"{path}[{i}]")
    elif isinstance(sent, bool) or sent is None or isinstance(sent, str):
        assert type(got) is type(sent), path
        assert got == sent, path
    else:
        assert isinstance(got, (int, float)), path
        assert not isinstance(got, bool), path
        assert got == sent, path


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        ({"a": 1}, {}),
        ({"a": [1, 2]}, {"a": [1]}),
        ({"a": True}, {"a": 1}),
        ({"a": "x"}, {"a": "y"}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"vlmrun": {"metadata": {}}}, {"vlmrun": {"metadata": {"environment": "dev"}}}),
    ],
)
def test_the_comparison_catches_loss_and_change(sent: Json, got: Json) -> None:
    with pytest.raises(AssertionError):
        _assert_kept(sent, got, "")


def test_the_comparison_allows_numbers_and_documented_defaults() -> None:
    _assert_kept({"t": 1}, {"t": 1.0}, "")
    _assert_kept({"vlmrun": {"metadata": {}}}, {"vlmrun": {"metadata": METADATA_DEFAULTS}}, "")


def _places(doc: Json, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON document, as a path of keys and indexes."""
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _places(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _places(value, (*path, i))
    return found


PARAM_STEP = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _resolves(doc: Json, param: str) -> bool:
    """Whether ``param`` names a place in ``doc`` (its last step may be missing)."""
    steps: list[str | int] = []
    end = 0
    for match in PARAM_STEP.finditer(param):
        assert match.start() == end, f"{param!r} is not a path"
        end = match.end()
        name, index, quoted = match.groups()
        steps.append(int(index) if index else json.loads(quoted) if quoted else name)
    assert end == len(param), f"{param!r} is not a path"
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        in_list = isinstance(step, int) and isinstance(doc, list) and step < len(doc)
        in_dict = isinstance(step, str) and isinstance(doc, dict) and step in doc
        if not (in_list or in_dict):
            return last and isinstance(doc, dict)
        doc = doc[step]
    return True


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests(), st.data())
def test_a_damaged_request_is_a_400_naming_a_real_place(
    sent: dict[str, Json], data: st.DataObject
) -> None:
    place = data.draw(st.sampled_from(_places(sent)))
    replacement = data.draw(st.one_of(json_value, st.just(_DELETE)))
    damaged = _replace(sent, place, replacement)
    error = _error_of(json.dumps(damaged).encode())
    if error is not None:
        assert error.status == 400
        assert error.message
        assert error.code is not None, error.message
        if error.param is not None:
            assert _resolves(damaged, error.param), (error.param, error.message)


@given(st.binary(max_size=64))
@settings(max_examples=100, deadline=None)
def test_any_bytes_decode_or_are_a_400(body: bytes) -> None:
    error = _error_of(body)
    assert error is None or error.status == 400


def _error_of(body: bytes) -> InvalidRequestError | None:
    """The error decoding ``body`` raises; anything but an InvalidRequestError escapes."""
    try:
        decode_request(body)
    except InvalidRequestError as error:
        return error
    return None


_DELETE = object()


def _replace(doc: Json, place: tuple[str | int, ...], value: Json) -> Json:
    """A copy of ``doc`` with the value at ``place`` replaced, or deleted."""
    if not place:
        return {} if value is _DELETE else value
    head, rest = place[0], place[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if rest:
        copy[head] = _replace(doc[head], rest, value)  # type: ignore[index,call-overload]
    elif value is _DELETE:
        del copy[head]  # type: ignore[arg-type]
    else:
        copy[head] = value  # type: ignore[index,call-overload]
    return copy


@pytest.mark.parametrize(
    ("param", "resolves"),
    [
        ("messages[0].content", True),
        ("messages[0].missing", True),
        ("messages[5].content", False),
        ("logit_bias.50256", True),
        ('logit_bias["a b"]', True),
        ("nothing.here", False),
    ],
)
def test_resolves_checks_a_param_against_the_document(param: str, resolves: bool) -> None:
    doc = {
        "messages": [{"role": "user", "content": "x"}],
        "logit_bias": {"50256": 1, "a b": 2},
    }
    assert _resolves(doc, param) is resolves
