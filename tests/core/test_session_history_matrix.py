"""A session's stored history goes through the matrix of the backend it is sent to.

One session, two backends: a turn with an image answered by ``seeing`` (which
takes images), then a text turn routed to ``blind`` (whose matrix rejects
``content.image_url``). The history the translator would send ``blind``
carries the image, so the matrix judges it like any other field.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web

from tests.sdk_client import SDK
from translator._plugins import get_plugin_manager
from translator.config import parse_config
from translator.server import TRANSLATOR, create_app, serving

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()

CONFIG = """
[backends.seeing]
plugin = "echo"

[backends.blind]
plugin = "echo"
matrix = { "content.image_url" = "rejected" }

[[routes]]
model = "see"
backend = "seeing"

[[routes]]
model = "text"
backend = "blind"
"""

IMAGE_TURN = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ],
    }
]
TEXT_TURN = [{"role": "user", "content": "and now?"}]


@pytest.fixture
def app() -> web.Application:
    pm = get_plugin_manager(entry_points=False)
    return create_app(parse_config(CONFIG), plugin_manager=pm)


@pytest.fixture
async def sdk(app: web.Application) -> AsyncIterator[SDK]:
    async with serving(app) as root:
        client = SDK("async", f"{root}/v1")
        yield client
        await client.aclose()


async def _image_turn(sdk: SDK, session: str) -> None:
    first = await sdk.chat(model="see", messages=IMAGE_TURN, extra_body={"session_id": session})
    assert first.choices[0].message.content == "look\nReceived: 1 image."


async def test_strict_a_stored_image_the_next_backend_rejects_is_a_400_naming_it(
    sdk: SDK,
) -> None:
    await _image_turn(sdk, "s1")
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat(model="text", messages=TEXT_TURN, extra_body={"session_id": "s1"})
    error = caught.value
    assert error.status_code == 400
    # The history comes first: the image is part 1 of message 0 of what blind would get.
    assert error.param == "messages[0].content[1]"
    assert "image_url" in error.message


async def test_strict_the_same_backend_still_gets_its_image_history(sdk: SDK) -> None:
    await _image_turn(sdk, "s2")
    again = await sdk.chat(
        model="see",
        messages=[{"role": "user", "content": "once more"}],
        extra_body={"session_id": "s2"},
    )
    assert again.choices[0].message.content == "once more"


async def test_lenient_the_stored_image_is_dropped_and_reported(
    sdk: SDK, app: web.Application
) -> None:
    await _image_turn(sdk, "s3")
    raw = await sdk.async_.chat.completions.with_raw_response.create(
        model="text",
        messages=TEXT_TURN,  # type: ignore[arg-type]
        extra_body={"session_id": "s3"},
        extra_headers={"x-translator-compat": "lenient"},
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "and now?"
    assert raw.headers["x-translator-ignored"] == "messages[0].content[1]"
    # Dropped from what blind was sent, not from the session: the store keeps
    # the image turn as it was, then the text turn and its answer.
    store = app[TRANSLATOR].sessions
    assert store is not None
    stored = await store.load("s3")
    assert [len(m.content) for m in stored[:1]] == [2]  # type: ignore[union-attr, arg-type]
    assert [m.content for m in stored[2:]] == ["and now?", "and now?"]  # type: ignore[union-attr]
