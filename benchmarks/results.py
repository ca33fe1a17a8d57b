"""The figures a run produces, as structs that ``--json`` saves unchanged."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time

import msgspec

__all__ = [
    "Environment",
    "LoadStats",
    "Results",
    "Row",
    "ServerComparison",
    "StoreCost",
    "Target",
    "environment",
]


class Row(msgspec.Struct, kw_only=True):
    """One measured operation on one payload (and backend, for the translator's rows)."""

    section: str
    """``request``, ``response`` or ``stream``."""
    payload: str
    stage: str
    kind: str
    """``floor``, ``baseline``, ``stage`` (one step) or ``full`` (a whole translation)."""
    backend: str | None = None
    bytes: int = 0
    """Input bytes of one operation."""
    us: float | None = None
    """Median microseconds per operation; None when not measured (see ``note``)."""
    spread: float | None = None
    """(slowest - fastest) / median over the rounds."""
    floor_us: float | None = None
    """The msgspec floor for the same bytes, measured in the same rounds."""
    x_floor: float | None = None
    """Median over the rounds of (this time / the floor's time just before it)."""
    rounds: list[float] = msgspec.field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Times the floor, or None."""
        return self.x_floor

    @property
    def mb_s(self) -> float | None:
        """Throughput in megabytes (10**6) of input per second."""
        if self.us is None or not self.us or not self.bytes:
            return None
        return self.bytes / self.us


class LoadStats(msgspec.Struct, kw_only=True):
    """One load run against one server at one concurrency."""

    server: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float | None = None
    """CPU time the server's process spent per request during the run."""


class ServerComparison(msgspec.Struct, kw_only=True):
    """The real server against a bare handler, at one concurrency (medians over repeats).

    ``unmetered`` is the real server with metrics off, run in the same turns:
    what the metrics cost.
    """

    concurrency: int
    translator: LoadStats
    bare: LoadStats
    fallback: LoadStats | None = None
    """The server with a route of two backends (fallback strategy), when measured."""
    unmetered: LoadStats | None = None
    """The same server with metrics off, when measured."""
    runs: list[LoadStats] = msgspec.field(default_factory=list)

    @property
    def metrics_cpu_ratio(self) -> float | None:
        """Server CPU per request with metrics on over with them off (1.0: free)."""
        off = self.unmetered
        if off is None or not off.server_cpu_us or self.translator.server_cpu_us is None:
            return None
        return self.translator.server_cpu_us / off.server_cpu_us

    @property
    def metrics_rps_ratio(self) -> float | None:
        """Requests per second with metrics on over with them off (1.0: free)."""
        off = self.unmetered
        return None if off is None or not off.rps else self.translator.rps / off.rps

    @property
    def added_p50_ms(self) -> float:
        return self.translator.p50_ms - self.bare.p50_ms

    @property
    def added_cpu_us(self) -> float | None:
        """Server CPU per request over the bare handler's: the translator's own work."""
        real, bare = self.translator.server_cpu_us, self.bare.server_cpu_us
        return None if real is None or bare is None else real - bare

    @property
    def rps_kept(self) -> float:
        return self.translator.rps / self.bare.rps if self.bare.rps else 0.0

    @property
    def fallback_cpu_ratio(self) -> float | None:
        """The two-backend route's server CPU per request over the one-backend route's."""
        routed = self.fallback.server_cpu_us if self.fallback is not None else None
        single = self.translator.server_cpu_us
        return None if routed is None or not single else routed / single


class StoreCost(msgspec.Struct, kw_only=True):
    """What a request costs in a session kept by one store (``no session``: no store)."""

    store: str
    us_per_request: float
    x_no_session: float


class Target(msgspec.Struct, kw_only=True):
    """One of the code's performance targets, as this run measured it."""

    name: str
    limit: str
    measured: str
    passed: bool | None
    """None when nothing could be measured."""
    worst: str = ""
    """Which payload and backend came closest to (or went past) the limit."""


class Environment(msgspec.Struct, kw_only=True):
    """Where and with what the figures were taken."""

    when: str
    python: str
    implementation: str
    platform: str
    machine: str
    processor: str
    cpus: int | None
    load_average: list[float] | None
    packages: dict[str, str | None]


class Results(msgspec.Struct, kw_only=True):
    """Everything one run measured."""

    command: str
    quick: bool
    rounds: int
    environment: Environment
    backends: list[str]
    skipped: dict[str, str]
    rows: list[Row]
    server: list[ServerComparison] = msgspec.field(default_factory=list)
    server_note: str = ""
    workers: list[LoadStats] = msgspec.field(default_factory=list)
    """The server with ``--workers 1`` and ``2`` (``server`` says which), per concurrency."""
    stores: list[StoreCost] = msgspec.field(default_factory=list)
    deploy_note: str = ""
    targets: list[Target] = msgspec.field(default_factory=list)


_PACKAGES = ("openai-translator", "msgspec", "aiohttp", "pluggy", "pydantic", "openai", "litellm")


def environment() -> Environment:
    """The machine, the interpreter and the versions of the packages involved."""
    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:
        load = None
    return Environment(
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        python=sys.version.split()[0],
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        machine=platform.machine(),
        processor=_cpu_model() or platform.processor(),
        cpus=os.cpu_count(),
        load_average=load,
        packages=packages,
    )


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
