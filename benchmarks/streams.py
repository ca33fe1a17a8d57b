"""One stream chunk: a native stream line in, an SSE frame out, per backend.

The stream is 500 chunks of one answer. Each backend's row translates the
lines its own upstream would send (OpenAI ``data:`` lines, Ollama NDJSON) into
the client's SSE frames with a reused buffer; the echo backend, which has no
upstream, turns text pieces into frames the way every emulated stream does.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from translator._core import Translator
from translator._model import ChatChunk, Usage
from translator._openai import sse_frame
from translator._streaming import ChunkStream

from . import baselines
from .plan import Plan
from .timing import Loop, clock

__all__ = ["stream_plan"]

_chunk_decoder = msgspec.json.Decoder(ChatChunk)
_decode = msgspec.json.decode
_encode = msgspec.json.encode


def _lines_loop(lines: list[bytes], each: Callable[[bytes], object]) -> Loop:
    def loop(n: int) -> int:
        start = clock()
        for _ in range(n):
            for line in lines:
                each(line)
        return clock() - start

    return loop


def _floor(lines: list[bytes], prefix: int) -> Loop:
    return _lines_loop(lines, lambda line: _encode(_decode(line[prefix:])))


def _openai_lines(lines: list[bytes]) -> Loop | str:
    """An upstream's ``data:`` lines through the plugin's SSE parser, typed, framed again."""
    try:
        from translator._openai.sse import SSEDecoder
    except ImportError as exc:
        return f"plugin not importable: {exc}"
    events = [line + b"\n\n" for line in lines]

    def loop(n: int) -> int:
        buffer = bytearray()
        start = clock()
        for _ in range(n):
            sse = SSEDecoder()
            for piece in events:
                for event in sse.feed(piece):
                    sse_frame(_chunk_decoder.decode(event.data), buffer)
        return clock() - start

    return loop


def _ollama_lines(lines: list[bytes]) -> Loop | str:
    """Ollama's NDJSON lines through the plugin's own line translator, then framed."""
    try:
        from translator_plugins.ollama.reply import LineTranslator
    except ImportError as exc:
        return f"plugin not importable: {exc}"

    def loop(n: int) -> int:
        buffer = bytearray()
        start = clock()
        for _ in range(n):
            stream = ChunkStream("gpt-4o-mini", id="chatcmpl-0123456789abcdef01234567", created=0)
            translate = LineTranslator(stream, include_usage=True, backend="ollama").feed
            for line in lines:
                for chunk in translate(line):
                    sse_frame(chunk, buffer)
        return clock() - start

    return loop


def _text_pieces(lines: list[bytes]) -> Loop:
    """An emulated stream: text pieces to chunks (one id for the stream) to frames."""
    chunks = [_chunk_decoder.decode(line[6:]) for line in lines]
    texts = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [t for t in texts if isinstance(t, str) and t]
    usage = chunks[-1].usage
    assert isinstance(usage, Usage)

    def loop(n: int) -> int:
        buffer = bytearray()
        start = clock()
        for _ in range(n):
            stream = ChunkStream("gpt-4o-mini", id="chatcmpl-0123456789abcdef01234567", created=0)
            for text in pieces:
                sse_frame(stream.text(text), buffer)
            sse_frame(stream.finish("stop"), buffer)
            sse_frame(stream.usage(usage), buffer)
        return clock() - start

    return loop


def stream_plan(openai: list[bytes], ollama: list[bytes], translator: Translator) -> Plan:
    """One chunk's translation per backend, beside the floor for the same lines."""
    plan = Plan("stream", f"stream {len(openai)} chunks")
    openai_body = b"\n".join(openai)
    n = len(openai)
    plan.floor(openai_body, units=n, loop=_floor(openai, 6), note="OpenAI lines")
    plan.add_loop(
        "json decode+encode",
        "baseline",
        _lines_loop(openai, lambda line: baselines.stdlib_json(line[6:])()),
        body=openai_body,
        units=n,
    )
    check = baselines.pydantic_chunk(openai[0][6:])
    if isinstance(check, str):
        plan.skip("pydantic ChatCompletionChunk", "baseline", check)
    else:
        from openai.types.chat import ChatCompletionChunk

        validate = ChatCompletionChunk.model_validate_json
        plan.add_loop(
            "pydantic ChatCompletionChunk",
            "baseline",
            _lines_loop(
                openai, lambda line: validate(line[6:]).model_dump_json(exclude_unset=True)
            ),
            body=openai_body,
            units=n,
        )
    for name in translator.backends:
        fmt, make, note = _STREAMS.get(name, ("openai", _no_stream, ""))
        lines = ollama if fmt == "ollama" else openai
        body = b"\n".join(lines)
        if fmt == "ollama":
            plan.floor(body, units=len(lines), loop=_floor(lines, 0), note="Ollama lines")
        measure = make(lines)
        if isinstance(measure, str):
            plan.skip("chunk -> SSE frame", "full", measure, backend=name)
        else:
            plan.add_loop(
                "chunk -> SSE frame",
                "full",
                measure,
                body=body,
                units=len(lines),
                backend=name,
                note=note,
            )
    return plan


def _no_stream(lines: list[bytes]) -> str:
    return "no native stream to translate (streams are emulated)"


_STREAMS: dict[str, tuple[str, Callable[[list[bytes]], Loop | str], str]] = {
    "echo": ("openai", _text_pieces, "text piece to frame, as every emulated stream"),
    "openai-compatible": ("openai", _openai_lines, "upstream data: line to frame"),
    "ollama": ("ollama", _ollama_lines, "NDJSON line to frame"),
}
