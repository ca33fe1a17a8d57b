"""The translator's stages and whole translations, request and response, per backend."""

from __future__ import annotations

from functools import partial

from translator._backend import Backend
from translator._compat import Mode
from translator._core import Translator
from translator._model import ChatRequest
from translator._openai import decode_request, encode_response
from translator.errors import NeedsIOError, TranslatorError, UnsupportedFieldError

from . import baselines
from .corpus import Payload, native_reply
from .plan import Plan
from .timing import Loop, clock

__all__ = ["STAGES_BY_HAND", "request_plan", "response_plan"]

STAGES_BY_HAND = "decode+matrix+encode"
"""The row of ``translate_request``'s stages called one by one: the pipeline's
own cost is how far ``translate_request`` is above it."""

_POOL_BYTES = 64_000_000
"""How many bytes of decoded requests a mutating stage may hold ready at once."""


# -- requests --------------------------------------------------------------------


def _usable_body(
    translator: Translator, backend: str, payload: Payload
) -> tuple[bytes, Mode | None, str] | str:
    """The bytes and mode under which ``backend`` translates ``payload`` purely, and how.

    Falls back to the payload without URL images when those need I/O, and to
    lenient mode when the matrix rejects a field; says so in the note.
    """
    body, mode, notes = payload.body, None, []
    for _ in range(3):
        try:
            request, report, _ = translator.prepare(body, backend, mode=mode)
            translator.backend(backend).encode_request(request)
        except NeedsIOError as exc:
            if payload.without_urls is None or body is payload.without_urls:
                return f"needs I/O: {exc.message}"
            body = payload.without_urls
            notes.append("without the URL image (it needs fetching)")
            continue
        except UnsupportedFieldError as exc:
            if mode is Mode.LENIENT:
                return f"rejected: {exc.message}"
            mode = Mode.LENIENT
            continue
        except NotImplementedError as exc:
            return f"no pure request translation ({exc})"
        except TranslatorError as exc:
            return f"{type(exc).__name__}: {exc.message}"
        except Exception as exc:  # a plugin being written may fail here; reported, not fatal
            return f"fails: {type(exc).__name__}: {exc}"
        if mode is Mode.LENIENT and report.dropped:
            notes.append("lenient mode, dropped " + ", ".join(report.dropped))
        return body, mode, "; ".join(notes)
    return "could not be translated purely"


def _apply_loop(body: bytes, backend: Backend, mode: Mode | None) -> Loop:
    """Time ``matrix.apply`` alone: it changes the request, so each call gets a fresh one."""
    pool = max(4, min(1_000, _POOL_BYTES // max(len(body), 1)))

    def loop(n: int) -> int:
        total = 0
        while n > 0:
            batch = [decode_request(body) for _ in range(min(n, pool))]
            apply = backend.matrix.apply
            start = clock()
            for request in batch:
                apply(request, mode=mode)
            total += clock() - start
            n -= len(batch)
        return total

    return loop


def _stages_by_hand(body: bytes, backend: Backend, mode: Mode | None) -> bytes:
    """What ``translate_request`` does, called stage by stage: its lower bound."""
    request = decode_request(body)
    backend.matrix.apply(request, mode=mode)
    return backend.encode_request(request)


def request_plan(payload: Payload, translator: Translator) -> Plan:
    """Decode, matrix, native encoding, the three by hand and the whole ``translate_request``."""
    plan = Plan("request", payload.name)
    body = payload.body
    plan.floor(body)
    plan.add("json decode+encode", "baseline", baselines.stdlib_json(body), body=body)
    litellm = baselines.litellm_ollama(body)
    if isinstance(litellm, str):
        plan.skip("litellm ollama transform", "baseline", litellm)
    else:
        plan.add("litellm ollama transform", "baseline", litellm, body=body)
    plan.add("decode+validate", "stage", partial(decode_request, body), body=body)
    for name, backend in translator.backends.items():
        usable = _usable_body(translator, name, payload)
        if isinstance(usable, str):
            plan.skip("translate_request", "full", usable, backend=name)
            continue
        used, mode, note = usable
        request: ChatRequest = translator.prepare(used, name, mode=mode)[0]
        apply = _apply_loop(used, backend, mode)
        plan.add_loop("apply matrix", "stage", apply, body=used, backend=name, note=note)
        encode = partial(backend.encode_request, request)
        plan.add("encode native", "stage", encode, body=used, backend=name)
        by_hand = partial(_stages_by_hand, used, backend, mode)
        plan.add(STAGES_BY_HAND, "stage", by_hand, body=used, backend=name, note=note)
        translate = partial(translator.translate_request, used, name, mode=mode)
        plan.add("translate_request", "full", translate, body=used, backend=name, note=note)
    return plan


# -- responses -------------------------------------------------------------------

_OPENAI_FORMAT = frozenset({"echo", "openai-compatible"})


def response_plan(payload: Payload, translator: Translator) -> Plan:
    """Native reply decoding, OpenAI encoding and the whole ``translate_response``."""
    plan = Plan("response", payload.name)
    pydantic_done = False
    for name, backend in translator.backends.items():
        reply = native_reply(name, payload.answer)
        if reply is None:
            plan.skip("translate_response", "full", "no sample reply in its format", backend=name)
            continue
        model = "gpt-4o-mini"
        try:
            response = backend.decode_response(reply, model=model)
        except NotImplementedError as exc:
            plan.skip(
                "translate_response", "full", f"no pure reply translation ({exc})", backend=name
            )
            continue
        except Exception as exc:  # a plugin being written may not read this sample yet
            why = f"sample reply refused: {type(exc).__name__}: {exc}"
            plan.skip("translate_response", "full", why, backend=name)
            continue
        plan.floor(reply, note="OpenAI reply" if name in _OPENAI_FORMAT else f"{name} reply")
        if name in _OPENAI_FORMAT and not pydantic_done:
            pydantic_done = True
            plan.add("json decode+encode", "baseline", baselines.stdlib_json(reply), body=reply)
            check = baselines.pydantic_response(reply)
            if isinstance(check, str):
                plan.skip("pydantic ChatCompletion", "baseline", check)
            else:
                plan.add("pydantic ChatCompletion", "baseline", check, body=reply)
        decode = partial(backend.decode_response, reply, model=model)
        plan.add("decode native reply", "stage", decode, body=reply, backend=name)
        encode = partial(encode_response, response)
        plan.add("encode OpenAI response", "stage", encode, body=reply, backend=name)
        translate = partial(translator.translate_response, reply, name, model=model)
        plan.add("translate_response", "full", translate, body=reply, backend=name)
    return plan
