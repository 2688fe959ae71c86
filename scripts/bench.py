"""Sparks' own benchmark: what the gateway adds, measured the way users stream, next to a minimal
aiohttp pass-through measured in the same run.

Starts the fake upstream (chunks shaped like OpenAI's), the minimal pass-through
(bench_proxy.py) and `sparks serve` on 127.0.0.1, all pinned to one core, with the load
generator pinned to the other: `wrk` for non-streaming requests, a bare asyncio HTTP client for
streams. Rounds are interleaved (direct, minimal, sparks, then minimal, sparks, direct, …) so
drift cancels. Method and figures: docs/performance.md.

    python scripts/bench.py                    # ~2 min; table, then bench-<timestamp>.json
    python scripts/bench.py --check            # exit 1 when a target is missed
    python scripts/bench.py --append-doc       # add the table to docs/performance.md
    python scripts/bench.py --soak 100000      # then RSS growth over 100k requests
    python scripts/bench.py --quick --out b.json   # ~15 s (the smoke test)
    python scripts/bench.py --summarize bench-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import aiohttp
from bench_fleet import ROOT, Layout, choose_layout, mb, parse_vs, proc_status_kb, started_fleet
from bench_report import (
    GOALS,
    LEGEND,
    PHASES,
    append_to_doc,
    compare,
    goals_met,
    num,
    render_markdown,
    render_text,
    spread,
    table,
    target_figures,
)
from bench_rounds import DEFAULT_PLAN, QUICK_PLAN, SOAK_MAX, Bench
from bench_wrk import INSTALL_HINT

DOC = ROOT / "docs" / "performance.md"


def event_loop_factory() -> tuple[Any, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def installed(module: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, timeout=30
    )
    return done.returncode == 0


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (
        head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
        or "unknown"
    )


def machine() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = "unknown"
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
    }


def notes(report: dict[str, Any]) -> list[str]:
    """What a reader must know to trust the figures; loud when something undermines them."""
    meta, targets, out = report["meta"], report["targets"], []
    if not meta["layout"]["pinned"]:
        out.append(f"NOT PINNED: {meta['layout']['note']}")
    if not meta["wrk"]:
        out.append(
            "NO WRK: non-streaming load came from the Python client, which costs more per "
            f"request than the proxies it measures; {INSTALL_HINT}"
        )
    c32 = ("nonstream_c32", "stream_c32")
    busy = {f"{n} {p}": t[p]["load_generator_busy"] or 0 for n, t in targets.items() for p in c32}
    if max(busy.values()) > 0.9:
        worst = max(busy, key=busy.__getitem__)
        out.append(f"the load generator was over 90% busy ({worst}): it may have set the pace")
    core = {f"{n} {p}": t[p]["server_core_busy"] for n, t in targets.items() for p in c32}
    if meta["layout"]["pinned"] and min(v or 1 for v in core.values()) < 0.85:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in core.items() if v is not None)
        out.append(
            f"the servers' core was not fully theirs at c=32 ({shares}): other processes took "
            "the rest, so absolute rates are low; ratios and CPU per stream still compare"
        )
    for name, t in targets.items():
        if errors := {p: t[p]["errors"] for p in PHASES if t[p]["errors"]}:
            out.append(f"FAILURES against {name}: {errors}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    if args.rounds:
        plan = replace(
            plan, rounds=args.rounds, total_s=plan.total_s * max(1, args.rounds / plan.rounds)
        )
    vs = parse_vs(args.vs, args.vs_model, args.vs_pid, args.allow_remote)
    layout: Layout = choose_layout(not args.no_pin)
    if not layout.pinned:
        print(f"bench: NOTE: {layout.note}", file=sys.stderr)
    factory, loop_name = event_loop_factory()
    host = machine()  # before pinning narrows what this process may use
    started, load_before = time.time(), os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="sparks-bench-") as tmp,
        started_fleet(Path(tmp), layout, args.chunk_shape) as (builtin, upstream_pid, cpus),
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        targets, sparks = builtin + vs, builtin[2]
        bench = Bench(targets, upstream_pid, plan, Path(tmp))
        if args.python_load:
            bench.wrk = None
        if bench.wrk is None:
            hint = f"non-streaming load from the Python client ({INSTALL_HINT})"
            print(f"bench: NOTE: wrk not used; {hint}", file=sys.stderr)
        startup = proc_status_kb(sparks.pid)
        results, rounds = runner.run(bench.rounds())
        timing = runner.run(bench.server_timing(sparks))
        time.sleep(0.5)
        rss = {t.name: proc_status_kb(t.pid) for t in targets}
        figures = {t.name: target_figures(results[t.name], t.name == "direct") for t in targets}
        summary = compare(results, "sparks")
        summary.update(
            server_timing_sparks_p50_ms=timing,
            cpu_ms_per_stream_c32=figures["sparks"]["stream_c32"]["cpu_ms_per_stream"],
            minimal_cpu_ms_per_stream_c32=figures["minimal"]["stream_c32"]["cpu_ms_per_stream"],
            batched_chunks=figures["sparks"]["chunk_gaps"]["batched"],
            startup_rss_mb=mb(startup.get("VmRSS")),
            idle_rss_mb=mb(rss["sparks"].get("VmRSS")),
            peak_rss_mb=mb(rss["sparks"].get("VmHWM")),
            soak_rss_growth_pct=None,
        )
        report: dict[str, Any] = {
            "meta": {
                "started": time.strftime("%Y-%m-%d %H:%M %z", time.localtime(started)),
                "argv": sys.argv[1:],
                "commit": commit(),
                "plan": asdict(plan),
                "rounds_completed": rounds,
                "layout": {**asdict(layout), "describe": layout.describe(), "allowed_cpus": cpus},
                "machine": host,
                "wrk": bench.wrk,
                "load_generator": {
                    "nonstream": bench.wrk or "python client (bench_http.py)",
                    "stream": f"python client (bench_http.py) on {loop_name}",
                },
                "sparks_extras": {m: installed(m) for m in ("orjson", "uvloop")},
                "sparks_event_loop": os.environ.get("SPARKS_EVENT_LOOP", "auto"),
                "chunk_shape": args.chunk_shape,
                "loadavg_before": round(load_before, 2),
            },
            "targets": figures,
            "rss_mb": {
                n: {"idle": mb(s.get("VmRSS")), "peak": mb(s.get("VmHWM"))}
                for n, s in rss.items()
                if s
            },
            "summary": summary,
            "vs": {t.name: compare(results, t.name) for t in vs},
            "soak": None,
        }
        if args.soak:
            count = min(args.soak, SOAK_MAX)
            print(f"bench: soak, {count} requests through sparks…", file=sys.stderr, flush=True)
            rps = figures["sparks"]["nonstream_c32"]["rps"] or 1000.0
            report["soak"] = runner.run(bench.soak(sparks, count, args.soak_deadline, rps))
            summary["soak_rss_growth_pct"] = report["soak"]["growth_pct"]
        report["targets_met"] = goals_met(summary)
        report["meta"]["loadavg_after"] = round(os.getloadavg()[0], 2)
        report["meta"]["seconds"] = round(time.time() - started, 1)
        report["notes"] = notes(report)
    return report


def describe(report: dict[str, Any]) -> str:
    m, meta = report["meta"]["machine"], report["meta"]
    gen = meta["load_generator"]
    extras = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in meta["sparks_extras"].items())
    soak = report["soak"]
    soaked = f"soak: {soak['requests']} requests in {soak['seconds']} s" if soak else "no soak"
    return "; ".join(
        (
            f"{m['usable_cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
            f"Python {m['python']}, aiohttp {m['aiohttp']}",
            meta["layout"]["describe"],
            f"non-streaming load: {gen['nonstream']}; streams: {gen['stream']}",
            f"chunks shaped like {meta['chunk_shape']}'s; Sparks extras: {extras}",
            f"{meta['rounds_completed']} interleaved rounds, {meta['seconds']} s in all",
            soaked,
            f"load average {meta['loadavg_before']} → {meta['loadavg_after']}",
        )
    )


def summarize_runs(paths: list[str]) -> str:
    """Median and range of the compared figures over several bench JSON files, with verdicts."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    lines = [f"{len(reports)} runs: median  [min .. max]  (verdict on the median)"]
    for key in reports[0]["summary"]:
        if key == "rounds":
            continue
        values = [r["summary"].get(key) for r in reports]
        if not any(isinstance(v, int | float) for v in values):
            continue
        sp = spread(values)
        goal = ""
        if key in GOALS and sp["median"] is not None:
            goal = "  " + ("met" if goals_met({key: sp["median"]})[key] else "MISSED")
            goal += f" (target {GOALS[key][0]} {GOALS[key][1]:g})"
        lines.append(
            f"  {key:<28}{num(sp['median']):>10}  [{num(sp['min'])} .. {num(sp['max'])}]{goal}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark Sparks against a direct call and a minimal pass-through."
    )
    parser.add_argument("--quick", action="store_true", help="a ~15 s run (the smoke test)")
    parser.add_argument("--out", help="JSON report path (default: bench-<timestamp>.json)")
    parser.add_argument(
        "--rounds", type=int, help=f"interleaved rounds (default {DEFAULT_PLAN.rounds})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--append-doc",
        nargs="?",
        const=str(DOC),
        metavar="MD",
        help="append the table to docs/performance.md (or MD)",
    )
    parser.add_argument("--no-pin", action="store_true", help="let the OS place every process")
    parser.add_argument(
        "--python-load", action="store_true", help="the Python client even when wrk is installed"
    )
    parser.add_argument(
        "--chunk-shape",
        default="openai",
        choices=("openai", "vllm", "plain"),
        help="extra fields in the upstream's chunks (default: openai)",
    )
    parser.add_argument(
        "--vs", action="append", default=[], metavar="NAME=URL[,KEY]", help="another gateway"
    )
    parser.add_argument("--vs-model", default="fake-model", help="model id sent to --vs gateways")
    parser.add_argument(
        "--vs-pid", action="append", default=[], metavar="NAME=PID", help="for its RSS and CPU"
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback --vs")
    parser.add_argument(
        "--soak", type=int, metavar="N", help=f"then N requests through Sparks (<= {SOAK_MAX})"
    )
    parser.add_argument("--soak-deadline", type=float, default=900.0, metavar="SECONDS")
    parser.add_argument(
        "--summarize", nargs="+", metavar="JSON", help="median and range over earlier runs"
    )
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize_runs(args.summarize))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so subprocesses stop
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; subprocesses stopped", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
    out = Path(args.out or time.strftime("bench-%Y%m%d-%H%M%S.json"))
    out.write_text(json.dumps(report, indent=2) + "\n")
    header, rows = table(report)
    print("\n" + render_text(header, rows) + "\n" + LEGEND)
    print(f"\n{describe(report)}")
    print(
        f"Sparks' Server-Timing p50 at c=1: {report['summary']['server_timing_sparks_p50_ms']} ms"
    )
    for note in report["notes"]:
        print(f"NOTE: {note}")
    if args.append_doc:
        heading = f"{report['meta']['started']}, commit {report['meta']['commit']}"
        append_to_doc(
            Path(args.append_doc),
            heading,
            describe(report) + ".\n\n" + render_markdown(header, rows) + "\n\n" + LEGEND,
        )
        print(f"appended to {args.append_doc}")
    print(f"\nwrote {out} ({report['meta']['seconds']} s)")
    missed = [k for k, v in report["targets_met"].items() if v is False]
    if args.check and (missed or any(n.startswith("FAILURES") for n in report["notes"])):
        print(
            f"bench: --check: missed {', '.join(missed) or 'nothing'}; see the notes",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
