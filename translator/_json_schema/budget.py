"""What checking one value may spend, counted in the thread that checks it.

Two things are counted, each against its own limit, and both start afresh
with :func:`start` before each check: the calls between the schema's parts
(:data:`CALLS`; why, in :mod:`.deadline`) and the text matched against
patterns times their program size (:data:`WORK`; why, in :mod:`.patterns`).
"""

from __future__ import annotations

import threading
from typing import Final

__all__ = ["CALLS", "WORK", "left", "start"]

CALLS: Final = 20_000
"""Calls between the schema's parts that one value's check may make."""
WORK: Final = 1 << 26
"""Bytes of text times program steps matched against patterns for one value: RE2's
slowest measured is under 2 ns for each, so about a tenth of a second."""


class _Left(threading.local):
    """What the check of the value being checked in this thread may still spend."""

    calls: int = 0
    work: int = 0


left: Final = _Left()


def start() -> None:
    """Give a value's check its whole budget: call before each check."""
    left.calls = CALLS
    left.work = WORK
