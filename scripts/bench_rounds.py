"""The measured rounds of scripts/bench.py: warm-up, interleaved blocks, the soak.

Every phase runs every target in turn and the order rotates from round to round, so slow drift
of a shared machine falls on every target alike. Each block records the CPU the target's
process, the upstream and the load generator used during it (/proc/PID/stat, getrusage).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_fleet import Target, cpu_seconds, mb, proc_status_kb
from bench_http import Client, nonstream_block, stream_block
from bench_report import GAP_DELAY_MS, PHASES, Block, Results, diff, percentile, ratio, rounded
from bench_wrk import write_script, wrk_block, wrk_version

STREAM_CHUNKS = 50
SOAK_MAX, SOAK_BATCH = 1_000_000, 5000


@dataclass(frozen=True)
class Plan:
    """How much to measure; every block is bounded by a count and a deadline."""

    rounds: int
    wrk_s: int  # one wrk block (wrk takes whole seconds)
    block_s: float  # one Python block's deadline
    c1_requests: int  # caps for the Python client
    c32_requests: int
    streams_c1: int
    streams_c32: int
    gap_chunks: int
    warmup_s: float
    total_s: float  # no round starts unless it can end by then


DEFAULT_PLAN = Plan(8, 1, 1.0, 3000, 30000, 400, 5000, 20, 1.0, 140.0)
QUICK_PLAN = Plan(1, 1, 0.5, 1500, 15000, 60, 2000, 8, 0.3, 20.0)


class Bench:
    """The rounds: every phase runs every target in turn, the order rotating each round."""

    def __init__(self, targets: list[Target], upstream_pid: int | None, plan: Plan, tmp: Path):
        self.targets, self.upstream_pid, self.plan = targets, upstream_pid, plan
        self.wrk = wrk_version()
        self.json: dict[str, Client] = {}
        self.streams: dict[str, Client] = {}
        self.gaps: dict[str, Client] = {}
        self.scripts: dict[str, Path] = {}
        for t in targets:

            def client(body: bytes, t: Target = t) -> Client:
                return Client(*t.address, t.chat_path, body, t.headers)

            self.json[t.name] = client(t.body())
            self.streams[t.name] = client(t.body(stream=True, chunks=STREAM_CHUNKS))
            gap = {"chunks": plan.gap_chunks, "chunk_delay_ms": GAP_DELAY_MS}
            self.gaps[t.name] = client(t.body(stream=True, **gap))
            self.scripts[t.name] = write_script(tmp, t.name, t.body(), t.headers)

    async def nonstream(
        self, target: Target, concurrency: int, count: int, seconds: float
    ) -> Block:
        if self.wrk:
            script = self.scripts[target.name]
            return await wrk_block(target.chat_url, script, concurrency, max(1, round(seconds)))
        deadline = time.perf_counter() + seconds
        return await nonstream_block(self.json[target.name], concurrency, count, deadline)

    async def phase(self, phase: str, target: Target) -> Block:
        p, now = self.plan, time.perf_counter()
        if phase == "nonstream_c1":
            return await self.nonstream(
                target, 1, p.c1_requests, p.wrk_s if self.wrk else p.block_s
            )
        if phase == "nonstream_c32":
            return await self.nonstream(
                target, 32, p.c32_requests, p.wrk_s if self.wrk else p.block_s
            )
        if phase == "stream_c1":
            return await stream_block(self.streams[target.name], 1, p.streams_c1, now + p.block_s)
        if phase == "stream_c32":
            return await stream_block(self.streams[target.name], 32, p.streams_c32, now + p.block_s)
        return await stream_block(self.gaps[target.name], 1, 1, now + 10.0, gaps=True)

    async def measured(self, phase: str, target: Target) -> Block:
        """One block, with the CPU the target, the upstream and the load generator used."""
        pids = (target.pid, self.upstream_pid)
        before = [cpu_seconds(pid) for pid in pids] + [load_generator_cpu()]
        block = await self.phase(phase, target)
        after = [cpu_seconds(pid) for pid in pids] + [load_generator_cpu()]
        block.cpu_s, block.upstream_cpu_s, block.load_cpu_s = map(diff, after, before)
        return block

    async def warm_up(self) -> None:
        """Open connections and take every code path once, outside the measurement."""
        for t in self.targets:
            deadline = time.perf_counter() + self.plan.warmup_s
            await nonstream_block(self.json[t.name], 1, 30, deadline)
            await nonstream_block(self.json[t.name], 32, 300, deadline + self.plan.warmup_s)
            await stream_block(self.streams[t.name], 32, 64, deadline + 2 * self.plan.warmup_s)

    async def rounds(self) -> tuple[Results, int]:
        await self.warm_up()
        results: Results = {t.name: {phase: [] for phase in PHASES} for t in self.targets}
        count, round_s = 0, 0.0
        end = time.perf_counter() + self.plan.total_s
        while count < self.plan.rounds and time.perf_counter() + round_s < end:
            start = time.perf_counter()
            shift = count % len(self.targets)
            order = self.targets[shift:] + self.targets[:shift]
            for phase in PHASES:
                for target in order:
                    results[target.name][phase].append(await self.measured(phase, target))
            count += 1
            round_s = time.perf_counter() - start
            print(f"bench: round {count} done ({round_s:.1f} s)", file=sys.stderr, flush=True)
        return results, count

    async def server_timing(self, target: Target) -> float | None:
        """Sparks' own `Server-Timing` (its work outside the upstream call), p50 at c=1."""
        block = await nonstream_block(self.json[target.name], 1, 300, time.perf_counter() + 1.0)
        return rounded(percentile(block.server_timing_ms, 50))

    async def soak(self, target: Target, requests: int, deadline_s: float, rps: float) -> dict:
        """`requests` through Sparks in batches: 9 in 10 non-streaming at c=32, 1 in 10 a
        5-chunk stream (8 at a time); RSS after every batch."""
        end = time.perf_counter() + deadline_s
        before = proc_status_kb(target.pid).get("VmRSS")
        stream = self.streams[target.name]
        short = Client(
            stream.host, stream.port, target.chat_path, target.body(True, chunks=5), target.headers
        )
        samples: list[dict[str, Any]] = []
        done = errors = 0
        start = time.perf_counter()
        while done < requests and time.perf_counter() < end:
            size = min(SOAK_BATCH, requests - done)
            streams = max(8, size // 10)
            seconds = min(10.0, max(1.0, (size - streams) / max(rps, 1.0)))
            blocks = [await self.nonstream(target, 32, size - streams, seconds)]
            blocks.append(await stream_block(short, 8, streams, end))
            done += sum(b.n for b in blocks)
            errors += sum(b.errors for b in blocks)
            samples.append(
                {"requests": done, "rss_mb": mb(proc_status_kb(target.pid).get("VmRSS"))}
            )
        await asyncio.sleep(1.0)
        after = proc_status_kb(target.pid)
        growth = ratio(diff(after.get("VmRSS"), before), before)
        return {
            "requests": done,
            "errors": errors,
            "seconds": round(time.perf_counter() - start, 1),
            "rss_before_mb": mb(before),
            "rss_after_mb": mb(after.get("VmRSS")),
            "peak_rss_mb": mb(after.get("VmHWM")),
            "growth_pct": rounded(None if growth is None else growth * 100, 1),
            "samples": samples,
        }


def load_generator_cpu() -> float:
    """CPU of this process and of its finished children (wrk)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime
