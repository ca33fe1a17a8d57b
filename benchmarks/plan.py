"""A plan: the rows of one payload and the cases that fill them, timed as one group.

Its floor, its baselines, every stage and every full translation for every
backend are timed round-robin in the same rounds, so each ratio compares
figures taken side by side.
"""

from __future__ import annotations

from collections.abc import Callable

from . import baselines
from .results import Row
from .timing import Case, Loop, loop_of, run_rounds

__all__ = ["Plan"]


class Plan:
    """Rows and the cases that fill them, measured together."""

    def __init__(self, section: str, payload: str) -> None:
        self.section = section
        self.payload = payload
        self._items: list[tuple[Row, Case | None, Case | None]] = []
        self._floors: dict[bytes, Case] = {}

    @property
    def rows(self) -> list[Row]:
        return [row for row, _, _ in self._items]

    def _row(self, stage: str, kind: str, size: int, backend: str | None, note: str) -> Row:
        return Row(
            section=self.section,
            payload=self.payload,
            stage=stage,
            kind=kind,
            backend=backend,
            bytes=size,
            note=note,
        )

    def add(
        self,
        stage: str,
        kind: str,
        fn: Callable[[], object],
        *,
        body: bytes,
        backend: str | None = None,
        note: str = "",
    ) -> None:
        """A row timing ``fn()``, one operation on ``body``."""
        self.add_loop(stage, kind, loop_of(fn), body=body, backend=backend, note=note)

    def add_loop(
        self,
        stage: str,
        kind: str,
        loop: Loop,
        *,
        body: bytes,
        backend: str | None = None,
        units: int = 1,
        note: str = "",
        floor: Loop | None = None,
    ) -> None:
        """A row timing ``loop``, each call ``units`` operations over ``body`` in all."""
        row = self._row(stage, kind, len(body) // units, backend, note)
        floor_case = self.floor(body, units=units, loop=floor)
        case = Case(f"{self.payload}/{stage}/{backend}", loop, units=units, floor=floor_case)
        self._items.append((row, case, floor_case))

    def skip(self, stage: str, kind: str, why: str, *, backend: str | None = None) -> None:
        """A row that could not be measured, and why."""
        self._items.append((self._row(stage, kind, 0, backend, why), None, None))

    def floor(
        self, body: bytes, *, units: int = 1, loop: Loop | None = None, note: str = ""
    ) -> Case:
        """The floor case for ``body``, adding its row on first use."""
        found = self._floors.get(body)
        if found is not None:
            return found
        case = Case(
            f"{self.payload}/floor", loop or loop_of(baselines.msgspec_floor(body)), units=units
        )
        self._floors[body] = case
        row = self._row("msgspec decode+encode", "floor", len(body) // units, None, note)
        self._items.append((row, case, case))
        return case

    def run(self, *, rounds: int, budget_s: float) -> list[Row]:
        """Time every case, then fill in the rows."""
        cases = [case for _, case, _ in self._items if case is not None]
        run_rounds(cases, rounds=rounds, budget_s=budget_s)
        for row, case, floor in self._items:
            if case is None:
                continue
            row.us = case.median_us
            row.spread = case.spread
            row.rounds = case.samples
            row.floor_us = floor.median_us if floor is not None else None
            row.x_floor = 1.0 if case is floor else case.median_ratio
        return self.rows
