"""scripts/bench.py --quick end to end: it starts its subprocesses, measures, and writes its JSON.

No speed is asserted here (the machine is shared); docs/performance.md holds the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

TARGETS = ("direct", "minimal", "sparks")


@pytest.mark.slow
def test_quick_bench_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())

    assert report["meta"]["rounds_completed"] >= 1
    assert report["meta"]["machine"]["nproc"] >= 1
    for name in TARGETS:
        target = report["targets"][name]
        for phase in ("nonstream_c1", "nonstream_c32"):
            figures = target[phase]
            assert figures["errors"] == 0, (name, phase)
            assert figures["n"] > 0 and figures["rps"] > 0, (name, phase)
            assert 0 < figures["p50_ms"] <= figures["p99_ms"], (name, phase)
        stream = target["stream"]
        assert stream["errors"] == 0 and stream["n"] > 0, name
        assert 0 < stream["ttft_p50_ms"] <= stream["total_p50_ms"], name
        assert stream["events_per_stream"] >= 50, name
        assert target["chunk_gaps"]["gaps"] > 0 and target["chunk_gaps"]["gap_p50_ms"] > 0

    summary = report["summary"]
    for key in ("added_p50_ms", "added_ratio_vs_minimal", "ttft_added_p50_ms"):
        assert isinstance(summary[key], float), key
    for key in (
        "throughput_ratio_vs_minimal",
        "server_timing_sparks_p50_ms",
        "cpu_us_per_request_c32",
        "idle_rss_mb",
        "peak_rss_mb",
    ):
        assert summary[key] > 0, key
    assert summary["batched_chunks"] >= 0
    assert set(report["targets_met"]) >= {"added_ratio_vs_minimal", "idle_rss_mb"}
    assert report["soak"] is None
    assert "wrote" in done.stdout
