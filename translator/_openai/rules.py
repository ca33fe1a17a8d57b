"""Rules across fields that OpenAI enforces and no single field's type can say.

Checked once on a decoded request, each failure a 400 naming the field to fix:

- ``top_logprobs`` only with ``logprobs: true``;
- ``tool_choice`` (other than ``"none"``) only with ``tools``, and a named
  function or custom tool must be one of them;
- an assistant message says something: ``content``, ``tool_calls``,
  ``function_call``, ``refusal`` or ``audio`` (a previous audio answer);
- a ``tool`` message answers a tool call an earlier assistant message made.
  A request that names a session is exempt: the call may be in the history
  the session keeps, not in the request.

The pass is a few attribute reads and one loop over the messages that looks
closer only at assistant and tool messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import UNSET

from .._model import (
    AssistantMessage,
    ChatRequest,
    CustomTool,
    FunctionTool,
    Message,
    NamedCustomChoice,
    NamedFunctionChoice,
    Tool,
    ToolChoice,
    ToolMessage,
)
from ..errors import InvalidRequestError
from .invalid import listed, shown

__all__ = ["check_rules"]


def check_rules(request: ChatRequest) -> None:
    """Raise :class:`InvalidRequestError` if ``request`` breaks a cross-field rule."""
    top = request.top_logprobs
    if top is not UNSET and top is not None and request.logprobs is not True:
        raise InvalidRequestError(
            "Invalid value for 'top_logprobs': 'top_logprobs' is only allowed when "
            "'logprobs' is true.",
            param="top_logprobs",
            code="invalid_value",
        )
    choice = request.tool_choice
    if choice is not UNSET and choice != "none":
        _check_tool_choice(choice, request.tools)
    # The hot loop, kept to identity checks for most messages: nothing is built
    # unless the assistant called tools, and a session is looked at only when a
    # tool result answers no call the request holds.
    called: set[str] | None = None  # ids of the tool calls made so far
    for message in request.messages:
        if type(message) is AssistantMessage:
            if message.tool_calls:
                if called is None:
                    called = set()
                for call in message.tool_calls:
                    called.add(call.id)
            elif type(message.content) is not str and _silent(message):
                raise _says_nothing(_index(request.messages, message))
        elif (
            type(message) is ToolMessage
            and (called is None or message.tool_call_id not in called)
            and request.session is None
        ):
            raise _unanswered(_index(request.messages, message), message.tool_call_id, called)


def _check_tool_choice(choice: ToolChoice, tools: Sequence[Tool] | object) -> None:
    if not isinstance(tools, list) or not tools:
        raise InvalidRequestError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
            "'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if isinstance(choice, NamedFunctionChoice):
        kind, name = "function", choice.function.name
        names = [t.function.name for t in tools if isinstance(t, FunctionTool)]
    elif isinstance(choice, NamedCustomChoice):
        kind, name = "custom tool", choice.custom.name
        names = [t.custom.name for t in tools if isinstance(t, CustomTool)]
    else:
        return
    if name not in names:
        among = f" The {kind}s in 'tools' are {listed(tuple(names))}." if names else ""
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': no {kind} named {shown(name)} is in 'tools'.{among}",
            param="tool_choice",
            code="invalid_value",
        )


def _index(messages: Sequence[Message], message: Message) -> int:
    return next(i for i, m in enumerate(messages) if m is message)


def _silent(message: AssistantMessage) -> bool:
    """Whether an assistant message without tool calls or text says nothing at all."""
    return not (
        message.content
        or message.function_call
        or isinstance(message.refusal, str)
        or message.audio
    )


def _says_nothing(i: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"Missing required parameter: 'messages[{i}].content'. An assistant message needs "
        "'content' unless it has 'tool_calls', 'function_call', 'refusal' or 'audio'.",
        param=f"messages[{i}].content",
        code="missing_required_parameter",
    )


def _unanswered(i: int, call_id: str, called: set[str] | None) -> InvalidRequestError:
    param = f"messages[{i}].tool_call_id"
    if called is None:
        why = "no earlier assistant message has 'tool_calls'"
    elif len(called) <= 5:
        why = f"the earlier tool calls are {listed(tuple(sorted(called)))}"
    else:
        why = f"it answers none of the {len(called)} earlier tool calls"
    return InvalidRequestError(
        "Invalid parameter: messages with role 'tool' must be a response to a preceding "
        f"message with 'tool_calls'. '{param}' is {shown(call_id)}, but {why}.",
        param=param,
        code="invalid_value",
    )
