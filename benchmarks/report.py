"""Judging the targets and rendering the figures as reStructuredText tables.

The tables are ``simple`` reStructuredText tables, so the printed output can go
into the README as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from .results import LoadStats, Results, Row, ServerComparison, StoreCost, Target
from .stages import STAGES_BY_HAND

__all__ = [
    "CHUNK_US",
    "PIPELINE_RATIO",
    "REQUEST_RATIO",
    "RESPONSE_RATIO",
    "SERVER_ADDED_P50_MS",
    "SERVER_RPS_KEPT",
    "judge",
    "render",
]

REQUEST_RATIO = 1.5
PIPELINE_RATIO = 1.25
"""``translate_request`` over its stages called by hand: what the pipeline may add."""
RESPONSE_RATIO = 2.0
CHUNK_US = 3.0
SERVER_ADDED_P50_MS = 0.5
SERVER_RPS_KEPT = 0.70
_SERVER_LEVEL = 16


def _limit(row: Row) -> tuple[str, float, str] | None:
    """``(what, limit, unit)`` when ``row`` is held to a target."""
    if row.kind != "full" or row.backend is None:
        return None
    if row.stage == "translate_request":
        return ("ratio", REQUEST_RATIO, "x")
    if row.stage == "translate_response":
        return ("ratio", RESPONSE_RATIO, "x")
    if row.section == "stream":
        return ("us", CHUNK_US, " us")
    return None


def _value(row: Row, what: str) -> float | None:
    return row.ratio if what == "ratio" else row.us


def _row_target(row: Row) -> str:
    limit = _limit(row)
    if limit is None:
        return ""
    what, bound, unit = limit
    value = _value(row, what)
    if value is None:
        return "n/a"
    return f"<={bound:g}{unit.strip()} " + ("pass" if value <= bound else "MISS")


def _judge_rows(rows: Sequence[Row], name: str, stage: str, section: str) -> Target:
    found: list[tuple[Row, float]] = []
    bound, unit = 0.0, ""
    for row in rows:
        limit = _limit(row)
        if row.section != section or row.stage != stage or limit is None:
            continue
        what, bound, unit = limit
        value = _value(row, what)
        if value is not None:
            found.append((row, value))
    if not found:
        return Target(name=name, limit="", measured="not measured", passed=None)
    worst, value = max(found, key=lambda rv: rv[1])
    best = min(v for _, v in found)
    return Target(
        name=name,
        limit=f"<= {bound:g}{unit}",
        measured=f"{best:.2f} to {value:.2f}{unit} over {len(found)} rows",
        passed=value <= bound,
        worst=f"{worst.payload}, {worst.backend}",
    )


def _judge_server(server: Sequence[ServerComparison]) -> list[Target]:
    at = next((c for c in server if c.concurrency == _SERVER_LEVEL), None)
    if at is None:
        return [
            Target(name="server p50 added", limit="", measured="not measured", passed=None),
            Target(name="server rps kept", limit="", measured="not measured", passed=None),
        ]
    added_us = at.added_p50_ms * 1e3
    added_cpu = at.added_cpu_us
    cpu = "" if added_cpu is None else f"; server CPU {added_cpu:+.0f} us/request"
    return [
        Target(
            name=f"server p50 added at {_SERVER_LEVEL} concurrent",
            limit=f"<= {SERVER_ADDED_P50_MS:g} ms",
            measured=f"{at.added_p50_ms:.3f} ms ({added_us:.0f} us){cpu}",
            passed=at.added_p50_ms <= SERVER_ADDED_P50_MS,
        ),
        Target(
            name=f"server rps kept at {_SERVER_LEVEL} concurrent",
            limit=f">= {SERVER_RPS_KEPT:.0%}",
            measured=f"{at.rps_kept:.0%}",
            passed=at.rps_kept >= SERVER_RPS_KEPT,
        ),
    ]


def _judge_pipeline(rows: Sequence[Row]) -> Target:
    """``translate_request`` against its own stages called by hand, in the same rounds."""
    by_hand = {
        (r.payload, r.backend): r.us
        for r in rows
        if r.section == "request" and r.stage == STAGES_BY_HAND and r.us
    }
    found: list[tuple[Row, float]] = []
    for row in rows:
        bound = by_hand.get((row.payload, row.backend))
        if row.section == "request" and row.stage == "translate_request" and row.us and bound:
            found.append((row, row.us / bound))
    name = "translate_request vs its stages by hand"
    if not found:
        return Target(name=name, limit="", measured="not measured", passed=None)
    worst, value = max(found, key=lambda rv: rv[1])
    best = min(v for _, v in found)
    return Target(
        name=name,
        limit=f"<= {PIPELINE_RATIO:g}x",
        measured=f"{best:.2f} to {value:.2f}x over {len(found)} rows",
        passed=value <= PIPELINE_RATIO,
        worst=f"{worst.payload}, {worst.backend}",
    )


def judge(results: Results) -> list[Target]:
    """Every target of the code, as this run measured it."""
    rows = results.rows
    return [
        _judge_rows(rows, "translate_request vs floor", "translate_request", "request"),
        _judge_rows(rows, "translate_response vs floor", "translate_response", "response"),
        _judge_rows(rows, "one stream chunk, line to SSE frame", "chunk -> SSE frame", "stream"),
        *_judge_server(results.server),
        _judge_pipeline(rows),
    ]


# -- rendering ------------------------------------------------------------------


def _table(header: Sequence[str], body: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([rule, line(header), rule, *(line(r) for r in body), rule])


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    if n >= 10_000:
        return f"{n / 1e3:.0f} kB"
    return f"{n} B"


def render_rows(rows: Sequence[Row]) -> tuple[str, list[str]]:
    """The translation table and its numbered notes (the same note gets one number)."""
    notes: dict[str, int] = {}
    body: list[list[str]] = []
    last = ""
    for row in rows:
        group = f"{row.section}: {row.payload}"
        first = group if group != last else ""
        last = group
        stage, backend = row.stage, row.backend or ""
        if row.kind == "floor" and row.note:
            backend = f"({row.note})"
        elif row.note:
            number = notes.setdefault(row.note, len(notes) + 1)
            stage = f"{stage} [{number}]"
        body.append(
            [
                first,
                stage,
                backend,
                _size(row.bytes) if row.bytes else "",
                _num(row.us),
                "" if row.stage == "apply matrix" else _num(row.mb_s, 1),
                _num(row.ratio),
                _row_target(row),
            ]
        )
    header = ["payload", "operation", "backend", "input", "us/op", "MB/s", "x floor", "target"]
    listed = [f"[{n}] {note}" for note, n in notes.items()]
    return _table(header, body, right={3, 4, 5, 6}), listed


def render_server(server: Sequence[ServerComparison]) -> str:
    """The server comparison table."""
    header = [
        "concurrent",
        "rps",
        "bare rps",
        "kept",
        "p50 ms",
        "bare p50",
        "added p50",
        "p99 ms",
        "bare p99",
        "cpu us/req",
        "bare cpu",
        "2-route cpu",
        "2-route p50",
        "x 1-route cpu",
        "metrics off rps",
        "metrics cpu",
    ]
    body = [
        [
            str(c.concurrency),
            f"{c.translator.rps:,.0f}",
            f"{c.bare.rps:,.0f}",
            f"{c.rps_kept:.0%}",
            f"{c.translator.p50_ms:.3f}",
            f"{c.bare.p50_ms:.3f}",
            f"{c.added_p50_ms:+.3f}",
            f"{c.translator.p99_ms:.3f}",
            f"{c.bare.p99_ms:.3f}",
            _num(c.translator.server_cpu_us, 1),
            _num(c.bare.server_cpu_us, 1),
            _num(c.fallback.server_cpu_us if c.fallback else None, 1),
            f"{c.fallback.p50_ms:.3f}" if c.fallback else "-",
            _num(c.fallback_cpu_ratio, 2),
            "-" if c.unmetered is None else f"{c.unmetered.rps:,.0f}",
            "-" if c.metrics_cpu_ratio is None else f"x{c.metrics_cpu_ratio:.3f}",
        ]
        for c in server
    ]
    return _table(header, body, right=set(range(16)))


def render_workers(workers: Sequence[LoadStats]) -> str:
    """``--workers 1`` against ``--workers 2``, each concurrency's rows together."""
    one = {w.concurrency: w for w in workers if w.server == "workers 1"}
    body = [
        [
            str(w.concurrency),
            w.server.removeprefix("workers "),
            f"{w.rps:,.0f}",
            f"{w.rps / one[w.concurrency].rps:.2f}x" if w.concurrency in one else "",
            f"{w.p50_ms:.3f}",
            f"{w.p99_ms:.3f}",
            str(w.errors),
        ]
        for w in workers
    ]
    header = ["concurrent", "workers", "rps", "vs 1 worker", "p50 ms", "p99 ms", "errors"]
    return _table(header, body, right=set(range(7)))


def render_stores(stores: Sequence[StoreCost]) -> str:
    """What a session turn costs with each store."""
    base = next((s.us_per_request for s in stores if s.store == "no session"), None)
    body = [
        [
            s.store,
            f"{s.us_per_request:,.0f}",
            "" if base is None else f"{s.us_per_request - base:+,.0f}",
            f"{s.x_no_session:.2f}x",
        ]
        for s in stores
    ]
    header = ["store", "us/request", "store's cost", "vs no session"]
    return _table(header, body, right={1, 2, 3})


def render_targets(targets: Sequence[Target]) -> str:
    """The targets, each with pass or MISS."""
    body = [
        [
            t.name,
            t.limit,
            t.measured,
            "n/a" if t.passed is None else ("pass" if t.passed else "MISS"),
            t.worst,
        ]
        for t in targets
    ]
    return _table(["target", "limit", "measured", "result", "worst case"], body, right=set())


def render(results: Results) -> str:
    """The whole report, as printed."""
    env = results.environment
    table, notes = render_rows(results.rows)
    parts = [
        f"$ {results.command}",
        f"{env.when}  Python {env.python}  {env.processor} x{env.cpus}"
        f"  load {_load(env.load_average)}",
        "  ".join(f"{k} {v}" for k, v in env.packages.items() if v is not None),
        f"median of {results.rounds} rounds; x floor = time / (msgspec untyped decode+encode of the"
        " same bytes, in the same rounds)",
        "",
        table,
        "",
        *notes,
    ]
    if results.skipped:
        parts += [
            "",
            "Not measured: " + "; ".join(f"{k} ({v})" for k, v in results.skipped.items()),
        ]
    parts += [
        "",
        "Server, echo backend, small text request, loopback, client in its own process;"
        " medians of the runs; cpu = the server process's CPU time per request;"
        " 2-route = every model routed to two echo backends (fallback strategy, no failure);"
        " metrics cpu = its CPU per request with metrics on over the same server with"
        " them off (the default is on):",
    ]
    if results.server:
        parts += ["", render_server(results.server)]
    else:
        parts += [f"  not measured: {results.server_note}"]
    parts += [
        "",
        "Server as deployed: translator serve --workers 1 and 2 (echo backend, local stores),"
        " two load generator processes at once; medians of the runs (rps summed, p50/p99 the"
        " slower client's):",
    ]
    parts += ["", render_workers(results.workers)] if results.workers else []
    parts += [
        "",
        "A session turn, in process (echo backend; 10 turns a session; the store's cost ="
        " us/request - no session):",
    ]
    parts += ["", render_stores(results.stores)] if results.stores else []
    if results.deploy_note:
        parts += [f"  not measured: {results.deploy_note}"]
    parts += ["", "Targets:", "", render_targets(results.targets)]
    return "\n".join(parts) + "\n"


def _load(load: list[float] | None) -> str:
    return "n/a" if load is None else " ".join(f"{x:.2f}" for x in load)
