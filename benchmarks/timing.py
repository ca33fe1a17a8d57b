"""Timing loops: calibrated, repeated round-robin, summarised by medians.

Every case of a group is timed once per round, in turn, each right after its
floor, so that the noise of a busy machine falls on both alike: a case's ratio
to its floor is the median of the ratios of these pairs, and holds even when
the absolute figures wander.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

__all__ = ["Case", "Loop", "calibrate", "clock", "loop_of", "run_rounds"]

clock = time.thread_time_ns
"""The CPU time of this thread: time spent waiting for a core that other processes
hold does not count, so a busy machine slows the figures far less than it does
the wall clock. (The server figures are wall-clock: latency is what a client sees.)"""

Loop = Callable[[int], int]
"""Runs the measured operation ``n`` times and returns the :data:`clock` nanoseconds it took."""


def loop_of(fn: Callable[[], object]) -> Loop:
    """A :data:`Loop` calling ``fn`` with no setup between calls."""

    def loop(n: int) -> int:
        start = clock()
        for _ in range(n):
            fn()
        return clock() - start

    return loop


class Case:
    """One measured operation: its loop, how many calls a round makes, and the results."""

    __slots__ = ("floor", "label", "loop", "max_number", "number", "ratios", "samples", "units")

    def __init__(
        self,
        label: str,
        loop: Loop,
        *,
        units: int = 1,
        floor: Case | None = None,
        max_number: int = 1_000_000,
    ):
        self.label = label
        self.loop = loop
        self.floor = floor
        """The case this one is compared with, timed just before it in every round."""
        self.units = units
        """Operations per call (a stream loop translates many chunks per call)."""
        self.max_number = max_number
        self.number = 1
        self.samples: list[float] = []
        self.ratios: list[float] = []

    @property
    def median_us(self) -> float:
        """Median microseconds per operation over the rounds."""
        return statistics.median(self.samples)

    @property
    def median_ratio(self) -> float | None:
        """Median over the rounds of this case's time over its floor's, timed side by side."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds: how steady the figure was."""
        median = self.median_us
        return (max(self.samples) - min(self.samples)) / median if median else 0.0


def calibrate(case: Case, budget_s: float) -> None:
    """Choose ``case.number`` so that one round of it takes about ``budget_s``."""
    n = 1
    while True:
        elapsed = _timed(case.loop, n) / 1e9
        if elapsed >= budget_s / 4 or n >= case.max_number:
            break
        n = min(case.max_number, n * 4 if elapsed < budget_s / 40 else n * 2)
    per_call = max(elapsed / n, 1e-9)
    case.number = max(1, min(case.max_number, round(budget_s / per_call)))


def run_rounds(cases: list[Case], *, rounds: int, budget_s: float) -> None:
    """Calibrate each case, then time them all round-robin, ``rounds`` times.

    A case with a floor is timed right after it, and the pair's ratio kept.
    """
    for case in cases:
        calibrate(case, budget_s)
    for _ in range(rounds):
        for case in cases:
            floor = case.floor
            if floor is None or floor is case:
                _sample(case)
                continue
            floor_us = _sample(floor)
            case.ratios.append(_sample(case) / floor_us)


def _sample(case: Case) -> float:
    """Time one round of ``case``; record and return microseconds per operation."""
    us = _timed(case.loop, case.number) / 1e3 / (case.number * case.units)
    case.samples.append(us)
    return us


def _timed(loop: Loop, n: int) -> int:
    """Run ``loop`` with the garbage collector paused, as :mod:`timeit` does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return loop(n)
    finally:
        if enabled:
            gc.enable()
