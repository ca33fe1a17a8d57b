"""``python -m benchmarks [--quick] [--json FILE] [--no-server]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import msgspec

from translator._core import Translator

from .backends import discover
from .corpus import build_payloads, stream_lines
from .deploy import compare_workers, session_costs
from .report import judge, render
from .results import Results, Row, environment
from .server import compare_servers
from .stages import request_plan, response_plan
from .streams import stream_plan

__all__ = ["Settings", "main", "measure"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """How long to measure: rounds per case, seconds per round, server load.

    Many short rounds beat a few long ones on a busy machine: a round shorter
    than the scheduler's time slice is seldom interrupted, and the few that
    are fall outside the median.
    """

    rounds: int = 101
    budget_s: float = 0.0005
    server: bool = True
    server_requests: int = 2_000
    server_repeats: int = 5
    session_turns: int = 500
    session_rounds: int = 5


FULL = Settings()
QUICK = Settings(
    rounds=31,
    budget_s=0.00025,
    server_requests=300,
    server_repeats=3,
    session_turns=100,
    session_rounds=3,
)


def measure(
    settings: Settings, *, command: str = "python -m benchmarks", progress: bool = False
) -> Results:
    """Run every measurement and judge the targets."""
    found = discover()
    translator = Translator(found.backends)

    def say(what: str) -> None:
        if progress:
            print(f"  {what}", file=sys.stderr, flush=True)

    rows: list[Row] = []
    for payload in build_payloads():
        for plan in (request_plan(payload, translator), response_plan(payload, translator)):
            say(f"{plan.section}: {plan.payload}")
            rows += plan.run(rounds=settings.rounds, budget_s=settings.budget_s)
    openai, ollama = stream_lines()
    plan = stream_plan(openai, ollama, translator)
    say(f"stream: {plan.payload}")
    rows += plan.run(rounds=settings.rounds, budget_s=settings.budget_s)
    results = Results(
        command=command,
        quick=settings != FULL,
        rounds=settings.rounds,
        environment=environment(),
        backends=sorted(found.backends),
        skipped=found.skipped,
        rows=rows,
    )
    if settings.server:
        say("server: 1, 16 and 64 concurrent")
        small = build_payloads()[0].body
        server = asyncio.run(
            compare_servers(
                small, requests=settings.server_requests, repeats=settings.server_repeats
            )
        )
        if isinstance(server, str):
            results.server_note = server
        else:
            results.server = server
        _measure_deployment(results, settings, small, say)
    else:
        results.server_note = "skipped (--no-server)"
        results.deploy_note = "skipped (--no-server)"
    results.targets = judge(results)
    return results


def _measure_deployment(
    results: Results, settings: Settings, body: bytes, say: Callable[[str], None]
) -> None:
    """``--workers 1`` against ``2``, and a session turn's cost per store."""
    say("server: --workers 1 and 2 at 16 and 64 concurrent")
    workers = asyncio.run(
        compare_workers(body, requests=settings.server_requests, repeats=settings.server_repeats)
    )
    if isinstance(workers, str):
        results.deploy_note = workers
    else:
        results.workers = workers
    say("session turns: memory, local and Redis stores")
    results.stores, note = asyncio.run(
        session_costs(turns=settings.session_turns, rounds=settings.session_rounds)
    )
    results.deploy_note = "; ".join(filter(None, (results.deploy_note, note)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Translation throughput and server overhead, with baselines in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds; well under a minute")
    parser.add_argument("--json", metavar="FILE", help="save every figure, machine and versions")
    parser.add_argument("--no-server", action="store_true", help="skip the server overhead part")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.no_server:
        settings = msgspec.structs.replace(settings, server=False)
    shown = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    results = measure(settings, command=shown, progress=True)
    sys.stdout.write(render(results))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
