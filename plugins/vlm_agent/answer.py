"""A finished execution as a chat completion.

The assistant's text is the execution's ``response``:

* when the client asked for JSON (``json_schema`` or ``json_object``), the
  response as JSON text, byte for byte (a string response is taken to be
  that text already);
* otherwise, a string response as it is; an object whose only value is a
  string, or that has a string ``content``, ``text`` or ``response``, that
  string; anything else (an object with several fields, a list, a number) as
  JSON text; no response at all as the empty string.

Usage carries the agent's ``credits_used``, ``steps`` and ``duration_seconds``
beside token counts. The agent reports no tokens, so they are estimated
(:func:`translator._tokens.estimate_tokens` of the prompt and of the answer)
and the usage is marked ``estimated``; counts the agent does report are used
as they are.
"""

from __future__ import annotations

from typing import Final

import msgspec

from translator.plugin_api import (
    ChatResponse,
    Choice,
    MalformedUpstreamError,
    ResponseMessage,
    UpstreamError,
    UpstreamTimeoutError,
    Usage,
    estimate_tokens,
    now,
)

from .wire import Execution, failure_message

__all__ = ["ExecutionFailedError", "answer_text", "timed_out", "to_response"]

_TEXT_KEYS: Final = ("content", "text", "response")
_decode_any = msgspec.json.Decoder().decode


class ExecutionFailedError(UpstreamError):
    """The agent ran the execution and it failed (502, the agent's message)."""

    default_code = "agent_execution_failed"


def answer_text(execution: Execution, *, json: bool) -> str:
    """The assistant's text for a completed ``execution`` (see the module docs)."""
    raw = execution.response
    try:
        value = _decode_any(raw)
    except msgspec.DecodeError as exc:  # pragma: no cover - Raw came from valid JSON
        raise MalformedUpstreamError(
            f"The agent's response to execution {execution.id} is not JSON.", backend="vlm-agent"
        ) from exc
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not json and isinstance(value, dict):
        if len(value) == 1:
            (only,) = value.values()
            if isinstance(only, str):
                return only
        for key in _TEXT_KEYS:
            found = value.get(key)
            if isinstance(found, str):
                return found
    return bytes(raw).decode()


def to_response(
    execution: Execution, *, model: str, json: bool, prompt: str = "", backend: str = "vlm-agent"
) -> ChatResponse:
    """The chat completion for a finished ``execution``; a failed one raises."""
    if execution.status != "completed":
        raise ExecutionFailedError(
            f"The {backend} backend's execution {execution.id} {_ended(execution.status)}: "
            f"{failure_message(execution)}",
            backend=backend,
        )
    content = answer_text(execution, json=json)
    created = execution.completed_at or execution.created_at
    return ChatResponse(
        "chatcmpl-" + execution.id,
        int(created.timestamp()) if created is not None else now(),
        model,
        [Choice(0, ResponseMessage(content=content))],
        _usage(execution, prompt, content),
    )


def _ended(status: str) -> str:
    return "failed" if status == "failed" else f"ended with status '{status}'"


def _usage(execution: Execution, prompt: str, content: str) -> Usage:
    agent = execution.usage
    if agent is None:
        p, c = estimate_tokens(prompt) if prompt else 0, estimate_tokens(content)
        return Usage(p, c, p + c, estimated=True)
    estimated: bool | None = None
    if agent.prompt_tokens is not None and agent.completion_tokens is not None:
        p, c = agent.prompt_tokens, agent.completion_tokens
    else:
        p, c = estimate_tokens(prompt) if prompt else 0, estimate_tokens(content)
        estimated = True
    credits, steps, duration = agent.credits_used, agent.steps, agent.duration_seconds
    return Usage(
        p,
        c,
        p + c,
        credits_used=credits,
        steps=steps,
        duration_seconds=duration,
        estimated=estimated,
    )


def timed_out(
    execution: Execution, deadline: float, backend: str, poll_error: str | None = None
) -> UpstreamTimeoutError:
    """The 504 for an execution still unfinished when the deadline passed."""
    last = f"last status: {execution.status}"
    if poll_error:
        last += f"; the last poll failed: {poll_error}"
    return UpstreamTimeoutError(
        f"The {backend} backend's execution {execution.id} did not finish within "
        f"{deadline:g}s ({last}).",
        backend=backend,
    )
