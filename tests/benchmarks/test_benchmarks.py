"""The benchmark machinery: it runs, covers the corpus, and reports every figure.

Nothing here asserts a timing: only the shape of what ``python -m benchmarks``
produces, on a tiny number of iterations.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

import benchmarks.__main__ as cli
from benchmarks import server
from benchmarks.corpus import STREAM_CHUNKS, build_payloads, native_reply, stream_lines
from benchmarks.report import judge, render
from benchmarks.results import LoadStats, Results, Row, ServerComparison, environment
from benchmarks.server import bare_app, compare_servers
from benchmarks.timing import Case, loop_of, run_rounds
from translator._model import ImagePart
from translator._openai import decode_request

TINY = cli.Settings(rounds=2, budget_s=0.00002, server=False)


@pytest.fixture(scope="module")
def results() -> Results:
    return cli.measure(TINY, command="python -m benchmarks (test)")


def test_corpus_is_what_the_issue_describes() -> None:
    small, vision, conversation, vlm = build_payloads()
    assert 900_000 < len(vision.body) < 1_200_000
    request = decode_request(vision.body)
    parts = request.messages[0].content
    assert isinstance(parts, list)
    urls = [p.image_url.url for p in parts if isinstance(p, ImagePart)]
    assert urls[0].startswith("data:image/jpeg;base64,")
    assert urls[1].startswith("https://")
    assert vision.without_urls is not None
    assert b"https://" not in vision.without_urls

    request = decode_request(conversation.body)
    assert len(request.messages) == 40
    roles = {type(m).__name__ for m in request.messages}
    assert {"ToolMessage", "AssistantMessage", "UserMessage", "SystemMessage"} <= roles
    assert len(request.tools) == 2  # type: ignore[arg-type]
    assert request.response_format.__struct_config__.tag == "json_schema"  # type: ignore[union-attr]

    request = decode_request(vlm.body)
    assert request.session == "sess-benchmark-0001"
    assert request.vlmrun is not msgspec.UNSET
    assert b'"type":"input_file"' in vlm.body
    assert decode_request(small.body).model

    openai, ollama = stream_lines()
    assert len(openai) == len(ollama) == STREAM_CHUNKS
    assert all(line.startswith(b"data: {") for line in openai)
    assert json.loads(ollama[-1])["done"] is True


def test_native_replies_exist_for_the_builtin_formats() -> None:
    answer = build_payloads()[2].answer
    assert json.loads(native_reply("openai-compatible", answer) or b"")["choices"]
    assert json.loads(native_reply("ollama", answer) or b"")["message"]["tool_calls"]
    assert json.loads(native_reply("vlm-agent", answer) or b"")["status"] == "completed"
    assert native_reply("no-such-plugin", answer) is None


def test_rounds_record_one_sample_and_one_paired_ratio_each() -> None:
    floor = Case("floor", loop_of(lambda: None))
    case = Case("case", loop_of(lambda: sum(range(50))), floor=floor)
    run_rounds([floor, case], rounds=3, budget_s=0.00005)
    assert len(case.samples) == 3
    assert len(case.ratios) == 3
    assert len(floor.samples) == 6  # its own round, and once before each pair
    assert case.median_ratio is not None
    assert case.median_ratio > 0


def test_every_payload_and_section_is_measured_for_echo(results: Results) -> None:
    assert "echo" in results.backends
    payloads = {p.name for p in build_payloads()}
    for section in ("request", "response"):
        full = [
            r
            for r in results.rows
            if r.section == section and r.kind == "full" and r.backend == "echo"
        ]
        assert {r.payload for r in full} == payloads
        assert all(r.us is not None and r.us > 0 and r.ratio is not None for r in full)
    stages = {r.stage for r in results.rows if r.backend == "echo"}
    assert {
        "apply matrix",
        "encode native",
        "decode+matrix+encode",
        "translate_request",
        "decode native reply",
        "encode OpenAI response",
        "translate_response",
        "chunk -> SSE frame",
    } <= stages
    shared = {r.stage for r in results.rows if r.backend is None}
    assert {"msgspec decode+encode", "json decode+encode", "decode+validate"} <= shared


def test_rows_without_a_figure_say_why(results: Results) -> None:
    for row in results.rows:
        if row.us is None:
            assert row.note, row
        else:
            assert row.floor_us is not None
            assert row.mb_s is not None


def test_report_shows_targets_with_pass_or_miss(results: Results) -> None:
    text = render(results)
    assert "$ python -m benchmarks (test)" in text
    for heading in ("us/op", "MB/s", "x floor", "target", "translate_request vs floor"):
        assert heading in text
    names = [t.name for t in results.targets]
    assert names[:3] == [
        "translate_request vs floor",
        "translate_response vs floor",
        "one stream chunk, line to SSE frame",
    ]
    assert all(t.passed is not None for t in results.targets[:3])
    assert results.targets[3].passed is None  # the server was not measured
    assert names[-1] == "translate_request vs its stages by hand"
    assert results.targets[-1].passed is not None
    assert "skipped (--no-server)" in text


def _row(stage: str, section: str, us: float, x_floor: float) -> Row:
    return Row(
        section=section,
        payload="p",
        stage=stage,
        kind="full",
        backend="b",
        bytes=100,
        us=us,
        floor_us=us / x_floor,
        x_floor=x_floor,
    )


def _load(server: str, rps: float, p50: float) -> LoadStats:
    return LoadStats(
        server=server, concurrency=16, requests=10, errors=0, rps=rps, p50_ms=p50, p99_ms=p50
    )


def test_targets_judge_the_worst_row_and_the_server_at_16() -> None:
    results = Results(
        command="x",
        quick=True,
        rounds=1,
        environment=environment(),
        backends=["b"],
        skipped={},
        rows=[
            _row("translate_request", "request", 2.0, 1.2),
            _row("translate_request", "request", 2.0, 1.6),
            _row("translate_response", "response", 2.0, 1.9),
            _row("chunk -> SSE frame", "stream", 3.5, 2.0),
        ],
        server=[
            ServerComparison(
                concurrency=16,
                translator=_load("translator", 700, 1.4),
                bare=_load("bare", 1000, 1.0),
            )
        ],
    )
    by_name = {t.name: t for t in judge(results)}
    assert by_name["translate_request vs floor"].passed is False
    assert by_name["translate_request vs floor"].measured.startswith("1.20 to 1.60x")
    assert by_name["translate_response vs floor"].passed is True
    assert by_name["one stream chunk, line to SSE frame"].passed is False
    assert by_name["server p50 added at 16 concurrent"].passed is True
    assert by_name["server rps kept at 16 concurrent"].passed is True


async def test_the_bare_handler_answers_with_the_given_bytes() -> None:
    async with TestClient(TestServer(bare_app(b'{"ok":true}'))) as client:
        response = await client.post("/v1/chat/completions", data=b"{}")
        assert response.status == 200
        assert await response.read() == b'{"ok":true}'


async def test_server_comparison_runs_a_client_process_against_both() -> None:
    found = await compare_servers(build_payloads()[0].body, requests=6, repeats=1, levels=(1, 2))
    # A string is why no figure could be made: the server did not import, or
    # answered with an error. Either is a broken server here, never a skip.
    assert not isinstance(found, str), found
    assert [c.concurrency for c in found] == [1, 2]
    for comparison in found:
        assert comparison.unmetered is not None  # the same server with metrics off
        assert comparison.metrics_cpu_ratio is not None
        for stats in (comparison.translator, comparison.bare, comparison.unmetered):
            assert stats.requests == 6
            assert stats.errors == 0
            assert stats.rps > 0
            assert 0 < stats.p50_ms <= stats.p99_ms
            assert stats.server_cpu_us is not None
            assert stats.server_cpu_us > 0


def test_cli_writes_every_figure_with_machine_and_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "QUICK", TINY)
    out = tmp_path / "bench.json"
    assert cli.main(["--quick", "--no-server", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "$ python -m benchmarks --quick --no-server --json" in printed
    saved = msgspec.json.decode(out.read_bytes(), type=Results)
    assert saved.environment.packages["msgspec"] == msgspec.__version__
    assert saved.environment.python
    assert saved.environment.cpus
    assert len(saved.rows) > 20
    assert len(saved.targets) == 6
    assert any(r.rounds for r in saved.rows)


async def test_server_part_skips_cleanly_without_a_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "real_app", lambda: "the server is not importable: gone")
    found = await compare_servers(b"{}", requests=1, repeats=1)
    assert found == "the server is not importable: gone"
