"""Sessions and uploaded files follow a request to whichever backend answers it.

The translator keeps a session's history and the uploaded files; each backend
of a route is fed them in its own form, so a turn answered by the fallback
carries the conversation the primary had, and a file uploaded once reaches
either.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from tests.routing_upstreams import StandIn, backend_table, routed_server, stand_ins

ROUTE = '[[routes]]\nmodel = "m"\nbackends = ["a", "b"]\n'


@pytest.fixture
async def ups() -> AsyncIterator[dict[str, StandIn]]:
    async with stand_ins("a", "b") as ups:
        yield ups


def config(ups: dict[str, StandIn]) -> str:
    return backend_table("a", ups["a"].base_url) + backend_table("b", ups["b"].base_url) + ROUTE


async def test_a_session_continues_on_the_fallback(ups: dict[str, StandIn]) -> None:
    async with routed_server(config(ups)) as (_, client):
        session = {"session_id": "s-1"}
        first = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "My name is Ada."}], extra_body=session
        )
        assert first.choices[0].message.content == "from a"
        ups["a"].fault = "503"
        raw = await client.chat.completions.with_raw_response.create(
            model="m",
            messages=[{"role": "user", "content": "What is my name?"}],
            extra_body=session,
        )
    assert raw.headers["x-translator-backend"] == "b"
    assert [(m["role"], m["content"]) for m in ups["b"].bodies[0]["messages"]] == [
        ("user", "My name is Ada."),
        ("assistant", "from a"),
        ("user", "What is my name?"),
    ]
    # The failed attempt on "a" was sent the same history, once.
    assert len(ups["a"].bodies[1]["messages"]) == 3


async def test_an_uploaded_file_reaches_the_fallback(ups: dict[str, StandIn]) -> None:
    data = b"%PDF-1.4 quarterly numbers"
    ups["a"].fault = "503"
    async with routed_server(config(ups)) as (_, client):
        uploaded = await client.files.create(file=("q3.pdf", data), purpose="user_data")
        await client.chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Summarise"},
                        {"type": "file", "file": {"file_id": uploaded.id}},
                    ],
                }
            ],
        )
    expected = "data:application/pdf;base64," + base64.b64encode(data).decode()
    for up in (ups["a"], ups["b"]):  # each attempt got the file inline
        part = up.bodies[0]["messages"][0]["content"][1]
        assert part["file"]["file_data"] == expected
        assert part["file"]["filename"] == "q3.pdf"
