"""The canonical model: requests, messages, parts, tools, responses, chunks, usage.

Every struct here is a ``msgspec.Struct``; polymorphic JSON is a tagged union
(content parts by ``type``, messages by ``role``). The model knows no wire
protocol beyond its OpenAI-compatible field names.
"""

from .messages import *  # noqa: F403
from .messages import __all__ as _messages
from .parts import *  # noqa: F403
from .parts import __all__ as _parts
from .request import *  # noqa: F403
from .request import __all__ as _request
from .response import *  # noqa: F403
from .response import __all__ as _response
from .tools import *  # noqa: F403
from .tools import __all__ as _tools
from .vlm import *  # noqa: F403
from .vlm import __all__ as _vlm

__all__ = sorted(["tag_of", *_messages, *_parts, *_request, *_response, *_tools, *_vlm])


def tag_of(obj: object) -> str:
    """The tag of a tagged-union member: a part's ``type``, a message's ``role``."""
    tag = type(obj).__struct_config__.tag  # type: ignore[attr-defined]
    assert isinstance(tag, str), f"{type(obj).__name__} is not a tagged struct"
    return tag
