"""scripts/bench.py end to end, and the pieces it trusts: its HTTP client and wrk's output.

No speed is asserted here (the machine is shared; speed is measured in the benchmark, never
asserted in a timed unit test); docs/performance.md holds the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import ROOT

SCRIPTS = ROOT / "scripts"
TARGETS = ("direct", "minimal", "sparks")
TABLE_ROWS = (
    "CPU per 50-chunk stream, c=32, ms",
    "streams/s, c=32",
    "streams/s, c=1",
    "added TTFT, c=1, ms",
    "non-streaming added p50, c=1, ms",
    "non-streaming req/s, c=32",
    "idle RSS, MB",
    "RSS growth over the soak, %",
    "chunks batched",
)


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """bench's modules import each other by name, as they do when bench.py runs."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import bench_http
    import bench_report
    import bench_wrk

    return {"http": bench_http, "report": bench_report, "wrk": bench_wrk}


@pytest.mark.slow
def test_quick_bench_reports_every_figure_and_appends_the_table(tmp_path: Path) -> None:
    out, doc = tmp_path / "b.json", tmp_path / "performance.md"
    doc.write_text("# Performance\n\nSome text.\n")
    argv = [sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--out", str(out)]
    done = subprocess.run(
        [*argv, "--append-doc", str(doc)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())

    meta = report["meta"]
    assert meta["rounds_completed"] >= 1
    assert meta["machine"]["usable_cpus"] >= 1 and meta["commit"]
    assert meta["layout"]["pinned"] == (meta["machine"]["usable_cpus"] >= 2)
    assert meta["load_generator"]["nonstream"] and meta["load_generator"]["stream"]
    for name in TARGETS:
        target = report["targets"][name]
        for phase in ("nonstream_c1", "nonstream_c32"):
            figures = target[phase]
            assert figures["errors"] == 0 and figures["n"] > 0, (name, phase)
            assert figures["rps"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"], name
            assert figures["cpu_us_per_request"] is not None, (name, phase)
        for phase in ("stream_c1", "stream_c32"):
            figures = target[phase]
            assert figures["errors"] == 0 and figures["n"] > 0, (name, phase)
            assert figures["streams_per_s"] > 0 and figures["cpu_ms_per_stream"] is not None
            assert 0 < figures["ttft_p50_ms"] <= figures["total_p50_ms"], (name, phase)
            assert figures["events_per_stream"] == 54, name  # role, 50, finish, usage, [DONE]
        gaps = target["chunk_gaps"]
        assert gaps["errors"] == 0 and gaps["gaps"] > 0 and gaps["batched"] is not None

    summary = report["summary"]
    for key in (
        "stream_cpu_ratio",
        "stream_rps_ratio",
        "added_p50_ratio",
        "rps_c32_ratio",
        "ttft_over_minimal_ms",
        "idle_rss_mb",
        "batched_chunks",
        "server_timing_sparks_p50_ms",
    ):
        assert isinstance(summary[key], int | float), key
    assert summary["soak_rss_growth_pct"] is None and report["soak"] is None
    assert report["targets_met"]["soak_rss_growth_pct"] is None  # not measured, not missed
    assert all(
        report["targets_met"][k] is not None for k in report["targets_met"] if "soak" not in k
    )

    for label in TABLE_ROWS:
        assert label in done.stdout, label
    assert "wrote" in done.stdout
    appended = doc.read_text()
    assert appended.startswith("# Performance\n\nSome text.\n")
    assert "\n## Runs\n" in appended and f"commit {meta['commit']}" in appended
    assert (
        "| measure | direct | minimal | sparks | sparks / minimal | target | verdict |" in appended
    )


async def test_bench_client_reads_real_shaped_streams_and_json_answers(
    bench_modules: dict[str, ModuleType], fake: ModuleType, aiohttp_server: Any
) -> None:
    """The Python load generator: chunked streams to [DONE], every event timed; JSON bodies."""
    http = bench_modules["http"]
    server = await aiohttp_server(fake.create_app(chunk_shape="openai"))
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    stream["fake"] = {"chunks": 50}
    headers = {"Content-Type": "application/json"}

    def client(payload: dict[str, Any]) -> Any:
        return http.Client(
            "127.0.0.1", server.port, "/v1/chat/completions", json.dumps(payload).encode(), headers
        )

    deadline = time.perf_counter() + 10
    streams = await http.stream_block(client(stream), 2, 4, deadline, gaps=True)
    assert (streams.n, streams.errors) == (4, 0)
    assert streams.events == [54] * 4 and len(streams.gaps_ms) == 4 * 53
    assert all(
        0 < t <= total for t, total in zip(streams.ttft_ms, streams.latencies_ms, strict=True)
    )
    answers = await http.nonstream_block(client(body), 3, 9, deadline)
    assert (answers.n, answers.errors) == (9, 0)

    conn = await client(stream).connect()
    reply = await conn.send(client(stream).request, 10)
    conn.transport.close()
    first = reply.body.split(b"\n\n")[1]
    for field in (b'"usage":null', b'"logprobs":null', b'"system_fingerprint":'):
        assert field in first


def test_wrk_result_line_is_read_in_milliseconds(bench_modules: dict[str, ModuleType]) -> None:
    block = bench_modules["wrk"].parse_output(
        "Running 1s test @ http://127.0.0.1:1/v1/chat/completions\n"
        "BENCH-WRK 2000 1000500 3 1 412.0 1510.0\n"
    )
    assert (block.n, block.errors, block.wall_s) == (1997, 4, 1.0005)
    assert (block.p50(), block.p99()) == (0.412, 1.51)


def test_check_verdicts_treat_unmeasured_targets_as_not_missed(
    bench_modules: dict[str, ModuleType],
) -> None:
    met = bench_modules["report"].goals_met(
        {"stream_cpu_ratio": 1.6, "stream_rps_ratio": 0.8, "ttft_over_minimal_ms": 0.4}
    )
    assert met["stream_cpu_ratio"] is False and met["stream_rps_ratio"] is True
    assert met["ttft_over_minimal_ms"] is True and met["soak_rss_growth_pct"] is None
