"""The examples of the VLM agents OpenAI-compatibility spec decode to exactly what it says.

Each example is sent the way the spec shows it, through the official SDK with
``extra_body``, to a loopback server at ``/v1/openai``; the bytes received are
decoded and compared with the whole expected request, defaults included.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from translator import ChatRequest, decode_request
from translator._model import (
    ChatResponse,
    Choice,
    ImagePart,
    ImageURL,
    InputFilePart,
    RequestMetadata,
    ResponseMessage,
    SystemMessage,
    TextPart,
    Usage,
    UserMessage,
    VlmRun,
    unknown_fields,
)
from translator._openai import encode_response

IMAGE = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def encode_image(image: bytes) -> str:
    """The spec's helper: an image as a data URI."""
    return "data:image/png;base64," + base64.b64encode(image).decode()


MESSAGES: list[Any] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": encode_image(IMAGE), "detail": "auto"}},
        ],
    },
]

DECODED_MESSAGES = [
    SystemMessage("You are a helpful assistant."),
    UserMessage(
        [
            TextPart("What's in this image?"),
            ImagePart(ImageURL(encode_image(IMAGE), "auto")),
        ]
    ),
]


@pytest.fixture
async def vlm() -> AsyncIterator[tuple[list[bytes], openai.AsyncOpenAI]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        answer = ChatResponse(
            "chatcmpl-1",
            1,
            "vlm-agent-1",
            [Choice(0, ResponseMessage(content="A pixel."))],
            Usage.of(1, 1),
        )
        return web.Response(body=encode_response(answer), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/openai/chat/completions", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1/openai")), api_key="<VLMRUN_API_KEY>", max_retries=0
    )
    try:
        yield bodies, client
    finally:
        await client.close()
        await server.close()


async def _decoded(vlm: tuple[list[bytes], openai.AsyncOpenAI], **kwargs: Any) -> ChatRequest:
    bodies, client = vlm
    chat_completion = await client.chat.completions.create(**kwargs)
    assert chat_completion.choices[0].message.content == "A pixel."
    request = decode_request(bodies[-1])
    assert dict(unknown_fields(request)) == {}
    return request


async def test_image_by_data_uri_with_detail_and_session_id(
    vlm: tuple[list[bytes], openai.AsyncOpenAI],
) -> None:
    request = await _decoded(
        vlm,
        model="vlm-agent-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={"session_id": "<session id>"},
    )
    assert request == ChatRequest(
        messages=DECODED_MESSAGES,
        model="vlm-agent-1",
        temperature=0.0,
        session_id="<session id>",
    )
    image = request.messages[1].content[1]  # type: ignore[union-attr,index]
    assert image.image_url.url.startswith("data:image/png;base64,iVBORw0KGgo")
    assert request.session == "<session id>"


async def test_extra_body_vlmrun_metadata(vlm: tuple[list[bytes], openai.AsyncOpenAI]) -> None:
    request = await _decoded(
        vlm,
        model="vlm-agent-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={
            "vlmrun": {
                "metadata": {
                    "environment": "dev",
                    "allow_retention": False,
                },
            }
        },
    )
    assert request == ChatRequest(
        messages=DECODED_MESSAGES,
        model="vlm-agent-1",
        temperature=0.0,
        vlmrun=VlmRun(
            metadata=RequestMetadata(
                environment="dev",
                session_id=None,
                allow_training=True,
                allow_retention=False,
                allow_logging=True,
                extra=None,
            )
        ),
    )
    assert request.session is None


async def test_request_metadata_with_domain(vlm: tuple[list[bytes], openai.AsyncOpenAI]) -> None:
    request = await _decoded(
        vlm,
        model="vlm-1",
        messages=MESSAGES,
        temperature=0,
        extra_body={
            "vlmrun": {
                "domain": "...",
                "metadata": {
                    "environment": "dev",
                    "session_id": "...",
                    "allow_training": False,
                },
            }
        },
    )
    assert request == ChatRequest(
        messages=DECODED_MESSAGES,
        model="vlm-1",
        temperature=0.0,
        vlmrun=VlmRun(
            domain="...",
            metadata=RequestMetadata(
                environment="dev",
                session_id="...",
                allow_training=False,
                allow_retention=True,
                allow_logging=True,
                extra=None,
            ),
        ),
    )
    assert request.session == "..."


async def test_input_file_objects_in_messages(vlm: tuple[list[bytes], openai.AsyncOpenAI]) -> None:
    request = await _decoded(
        vlm,
        model="vlm-agent-1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarize this video."},
                    {"type": "input_file", "file_id": "<file_id>"},
                ],
            }
        ],
    )
    assert request == ChatRequest(
        messages=[UserMessage([TextPart("Summarize this video."), InputFilePart("<file_id>")])],
        model="vlm-agent-1",
    )


async def test_metadata_extra_is_kept_as_given(vlm: tuple[list[bytes], openai.AsyncOpenAI]) -> None:
    extra = {"trace": "abc", "tags": ["a", "b"], "depth": {"n": 1}}
    request = await _decoded(
        vlm,
        model="vlm-agent-1",
        messages=MESSAGES,
        extra_body={"vlmrun": {"metadata": {"environment": "staging", "extra": extra}}},
    )
    assert request.vlmrun == VlmRun(metadata=RequestMetadata(environment="staging", extra=extra))
