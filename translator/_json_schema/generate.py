"""``fastjsonschema.compile``, with each ``pattern`` compiled as the schema writes it.

fastjsonschema rewrites every unescaped ``$`` of a ``pattern`` to ``\\Z``
(Python's end of text) before Python's ``re`` compiles it, inside a character
class too, where ``\\Z`` is no escape: the common URL pattern
``^https?://[^\\s/$.?#].[^\\s]*$`` would be refused. The compiled patterns
are replaced by RE2 anyway (:mod:`.patterns`), keyed by the pattern as
written, and RE2 reads ``$`` as JSON Schema does; so here the pattern is
compiled as written, only to refuse what Python's ``re`` cannot read at all,
as fastjsonschema does for ``patternProperties``.

The draft is the one ``$schema`` names (04, 06, 07, 2019-09), else 2019-09,
as fastjsonschema chooses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.draft06 import CodeGeneratorDraft06
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.draft2019 import CodeGeneratorDraft2019
from fastjsonschema.ref_resolver import RefResolver

__all__ = ["Compiled", "compile_schema"]


class Compiled(NamedTuple):
    """A schema's validating function, and the length of the code written for it."""

    validate: Any
    code_size: int


def compile_schema(definition: Any, handlers: Mapping[str, Callable[[str], Any]]) -> Compiled:
    """The validating function for ``definition``, ``$ref`` URIs resolved by ``handlers``;
    ``default`` is not filled in and ``format`` not asserted."""
    resolver = RefResolver.from_schema(definition, handlers=handlers, store={})
    generator = _generator(definition)(
        definition, resolver=resolver, use_default=False, use_formats=False
    )
    state, code = generator.global_state, generator.func_code
    exec(code, state)  # the code fastjsonschema wrote, as its compile does
    return Compiled(state[resolver.get_scope_name()], len(code))


def _as_written(base: type[CodeGeneratorDraft04]) -> type[CodeGeneratorDraft04]:
    class Generator(base):  # type: ignore[valid-type, misc]
        def generate_pattern(self) -> None:
            with self.l("if isinstance({variable}, str):"):
                pattern = self._definition["pattern"]
                self._compile_regexps[pattern] = re.compile(pattern)
                with self.l("if not REGEX_PATTERNS[{}].search({variable}):", repr(pattern)):
                    self.exc("{name} must match pattern {}", self.e(pattern), rule="pattern")

    Generator.__name__ = Generator.__qualname__ = f"{base.__name__}AsWritten"
    return Generator


_LATEST: Final = _as_written(CodeGeneratorDraft2019)
_DRAFTS: Final = (
    ("draft-04", _as_written(CodeGeneratorDraft04)),
    ("draft-06", _as_written(CodeGeneratorDraft06)),
    ("draft-07", _as_written(CodeGeneratorDraft07)),
    ("draft/2019", _LATEST),
    ("draft-2019", _LATEST),
)


def _generator(definition: Any) -> type[CodeGeneratorDraft04]:
    if isinstance(definition, dict):
        named = definition.get("$schema", "")
        for draft, generator in _DRAFTS:
            if draft in named:
                return generator
    return _LATEST
