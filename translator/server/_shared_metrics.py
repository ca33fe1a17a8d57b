"""Metrics shared by worker processes: ``prometheus_client``'s multiprocess mode.

The parent names one directory (:func:`prepare_multiprocess`); each worker
writes its values to files of its own there; a scrape in any worker reads
them all (:class:`WorkerFiles`).

A scrape reads files other processes are writing. ``prometheus_client``
creates a file empty and sizes it a moment later, and its reader fails on
an empty file (``struct.error``): a worker starting, or using a kind of
metric for the first time, would fail a scrape answered by another one. An
empty file holds no value yet, so it is passed over; a file that exists
but cannot be read raises :class:`UnreadableMetrics`, which ``/metrics``
answers with a 503 (never a 500).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import multiprocess, values
from prometheus_client.metrics_core import Metric

__all__ = [
    "MULTIPROC_ENV",
    "UnreadableMetrics",
    "WorkerFiles",
    "prepare_multiprocess",
    "shared",
    "worker_exited",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_UNREADABLE = (OSError, ValueError, RuntimeError, struct.error)
"""What reading a worker's file raises when the file is not one ``prometheus_client``
wrote, or not whole (a ``RuntimeError`` when it claims more than it holds)."""


class UnreadableMetrics(Exception):
    """A worker's file in the shared directory cannot be read; the message says which and why."""


def prepare_multiprocess(directory: str | os.PathLike[str]) -> Path:
    """Make ``directory`` (emptied) the place every worker writes its metrics to.

    Call it in the parent before the workers start: it sets
    ``PROMETHEUS_MULTIPROC_DIR``, which the workers inherit.
    """
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    shared()
    return path


def worker_exited(pid: int) -> None:
    """Forget the live gauges of the worker ``pid`` (its counters keep counting)."""
    if shared():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def shared() -> bool:
    """Whether values go to the shared directory (made if it does not exist yet);
    switches value storage over when the variable was set after
    ``prometheus_client`` was imported."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return False
    # prometheus_client writes into it without making it first.
    os.makedirs(directory, exist_ok=True)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return True


class WorkerFiles:
    """A collector: every worker's values in ``directory``, added up."""

    __slots__ = ("directory",)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Metric]:
        """Every metric of every file that holds values (:class:`UnreadableMetrics`
        when one cannot be read)."""
        files = [str(path) for path in self.directory.glob("*.db") if _sized(path)]
        try:
            merged: Iterable[Metric] = multiprocess.MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
                files, accumulate=True
            )
        except _UNREADABLE as exc:
            where = _first_unreadable(files) or str(self.directory)
            raise UnreadableMetrics(f"{where}: {type(exc).__name__}: {exc}") from exc
        return merged


def _first_unreadable(files: list[str]) -> str | None:
    """The first of ``files`` that cannot be read on its own, to name it."""
    for name in files:
        try:
            multiprocess.MultiProcessCollector.merge([name])  # type: ignore[no-untyped-call]
        except _UNREADABLE:
            return name
    return None


def _sized(path: Path) -> bool:
    """Whether a worker's file has been sized: it is created empty, then extended in
    one step, and never shrinks, so a file with any bytes can be read whole. A file
    removed meanwhile (the live gauges of a worker that exited) is passed over too."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False
