"""The README's compatibility section, generated from the built-in matrices.

``python -m translator._readme [--check] [PATH]`` rewrites the text
between the markers of ``PATH`` (default ``README.rst``); with ``--check`` it
writes nothing and exits 1 when the section is out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._compat import Matrix
from ._matrices import builtin_matrices, render_rst

__all__ = ["BEGIN", "COMMAND", "END", "main", "replace_section", "section", "update"]

BEGIN = ".. BEGIN COMPATIBILITY MATRIX"
END = ".. END COMPATIBILITY MATRIX"
COMMAND = "python -m translator._readme"

_INTRO = f"""\
.. Generated from the backends' matrices by ``{COMMAND}``; do not edit by hand.

Each backend declares how it treats every OpenAI request field, message role
and content part type: **supported** (passed on and honoured), **emulated** (the
translator does it for the backend), **ignored** (accepted, dropped before the
backend sees it, and reported in the ``x-translator-ignored`` response header)
or **rejected** (a 400 naming the field; dropped and reported instead in lenient
mode). A row such as ``role.developer`` or ``content.input_audio`` is a message
role or a content part type; ``translator matrix`` prints the same tables.
"""


def section(matrices: Sequence[Matrix] | None = None) -> str:
    """The generated text between the markers (the built-in matrices by default)."""
    found = builtin_matrices() if matrices is None else matrices
    return f"{_INTRO}\n{render_rst(found)}"


def replace_section(text: str, generated: str) -> str:
    """``text`` with the part between the markers replaced by ``generated``.

    Raises :class:`ValueError` when the markers are missing or out of order.
    """
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} were not found in order")
    head = text[: start + len(BEGIN)]
    return f"{head}\n\n{generated.strip()}\n\n{text[end:]}"


def update(path: Path, matrices: Sequence[Matrix] | None = None) -> bool:
    """Rewrite ``path``'s section; True when its text changed."""
    text = path.read_text(encoding="utf-8")
    new = replace_section(text, section(matrices))
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Regenerate the README's compatibility section."
    )
    parser.add_argument("path", nargs="?", default="README.rst", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the section is stale")
    args = parser.parse_args(argv)
    if args.check:
        text = args.path.read_text(encoding="utf-8")
        stale = replace_section(text, section()) != text
        if stale:
            print(f"{args.path}: the compatibility section is stale; run {COMMAND}")
        return 1 if stale else 0
    changed = update(args.path)
    print(f"{args.path}: {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
