"""Sparks' own benchmark: what the gateway adds to a direct call, next to a minimal proxy.

Starts ``scripts/fake_upstream.py``, a reference minimal aiohttp pass-through proxy (this file
with ``--minimal-proxy``) and ``sparks serve`` as subprocesses on loopback, then measures every
target in interleaved rounds (direct, minimal, sparks, then minimal, sparks, direct, …) so drift
cancels: non-streaming latency and requests/s at concurrency 1 and 32, time to the first event
and to ``[DONE]`` of a 50-chunk stream, per-chunk forwarding (nothing batched), CPU per request,
Sparks' RSS and its own ``Server-Timing``. The load generator is one aiohttp keep-alive session
in this process, on the same machine. Method and latest figures: docs/performance.md.

    python scripts/bench.py                       # ~80 s, writes bench-<timestamp>.json
    python scripts/bench.py --quick --out b.json  # ~10 s (the smoke test)
    python scripts/bench.py --vs litellm=http://127.0.0.1:4000,sk-... --vs-model fake-model
    python scripts/bench.py --soak 100000         # then RSS growth over 100k requests
    python scripts/bench.py --summarize bench-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-0123456789abcdef0123456789abcdef"
STREAM_CHUNKS = 50
GAP_DELAY_MS = 20.0
GAP_CHUNKS = 20
BATCHED_FRACTION = 0.25  # an inter-arrival gap under 25% of the upstream's delay counts as batched
SOAK_MAX = 1_000_000
BUILTIN = ("direct", "minimal", "sparks")
SERVER_TIMING = re.compile(r"\bsparks;dur=([0-9.]+)")
LISTENING = re.compile(r"listening on (http://\S+)")
GOALS = {  # SPEC targets, checked against the summary
    "added_ratio_vs_minimal": ("<=", 1.3),
    "throughput_ratio_vs_minimal": (">=", 0.75),
    "ttft_added_p50_ms": ("<=", 1.0),
    "batched_chunks": ("<=", 0),
    "idle_rss_mb": ("<=", 60.0),
    "soak_rss_growth_pct": ("<=", 10.0),
}


@dataclass(frozen=True)
class Plan:
    """How much to measure per block; every loop is bounded by a count and a deadline."""

    rounds: int
    c1_requests: int
    c32_requests: int
    streams: int
    gap_streams: int
    warmup: int
    block_s: float  # deadline of one block
    total_s: float  # no round starts unless it can end by then (warm-up excluded)


DEFAULT_PLAN = Plan(12, 600, 4000, 60, 1, 300, block_s=12.0, total_s=90.0)
QUICK_PLAN = Plan(3, 150, 800, 15, 1, 100, block_s=4.0, total_s=12.0)


@dataclass
class Target:
    name: str
    base_url: str  # …/v1
    model: str
    key: str | None = None
    pid: int | None = None  # for RSS and CPU, when known

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def body(self, stream: bool = False, **fake: float) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "ping"}],
        }
        if stream:
            body["stream"] = True
        if fake:
            body["fake"] = fake  # fake_upstream's per-request control; gateways forward it
        return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def spread(values: list[float | None]) -> dict[str, Any]:
    """Median and range of one figure over rounds (or runs)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "values": []}
    return {
        "median": rounded(statistics.median(present)),
        "min": rounded(min(present)),
        "max": rounded(max(present)),
        "values": [rounded(v) for v in present],
    }


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


# ---------------------------------------------------------------- processes


def proc_status_kb(pid: int | None) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) from /proc/PID/status; empty when unavailable."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU a process has used so far, from /proc/PID/stat."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


class Child:
    """A subprocess in its own session (so Ctrl-C reaches only us), output to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, cpu: int | None):
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_for_url(self, timeout_s: float = 20.0) -> str:
        """The URL from the child's `… listening on URL` line."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if match := LISTENING.search(self.log_path.read_text(errors="replace")):
                return match[1]
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def wait_healthy(self, url: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def child_env(tmp: Path) -> dict[str, str]:
    """Nothing of the user's: temp XDG dirs, no OS keyring, the bench key in the env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKS_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "data"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        SPARKS_OPENAI_API_KEY=KEY,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started_fleet(tmp: Path, pin: bool) -> Iterator[tuple[list[Target], dict[str, int] | None]]:
    """Fake upstream, minimal proxy and Sparks; all stopped when the block exits, however."""
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) < 2:
        print("bench: --pin needs 2 usable cores; not pinning", file=sys.stderr)
        pin = False
    # --pin: the proxy under test alone on one core; upstream and load generator on the other
    upstream_cpu, proxy_cpu = (cpus[0], cpus[1]) if pin else (None, None)
    env = child_env(tmp)
    python = sys.executable
    with ExitStack() as stack:

        def start(name: str, argv: list[str], cpu: int | None) -> Child:
            child = Child(name, argv, env, tmp / f"{name.replace(' ', '-')}.log", cpu)
            stack.callback(child.stop)
            return child

        fake = start(
            "fake upstream", [python, "scripts/fake_upstream.py", "--port", "0"], upstream_cpu
        )
        upstream_url = fake.wait_for_url()
        minimal = start(
            "minimal proxy",
            [python, str(Path(__file__).resolve()), "--minimal-proxy", "0", upstream_url],
            proxy_cpu,
        )
        port = free_port()
        config = tmp / "config.toml"
        config.write_text(
            f'[openai_api]\nbind = "127.0.0.1:{port}"\nrequests_per_minute = 0\n'
            f'[observer]\npath = "{tmp / "events.jsonl"}"\nconsole = false\n'
            f'[backends.fake]\nbase_url = "{upstream_url}"\n'
        )
        script = Path(python).parent / "sparks"
        head = [str(script)] if script.exists() else [python, "-m", "sparks"]
        sparks = start("sparks", [*head, "serve", "--config", str(config)], proxy_cpu)
        minimal_url = minimal.wait_for_url()
        sparks.wait_healthy(f"http://127.0.0.1:{port}/health")
        if pin:
            os.sched_setaffinity(0, {cpus[0]})
        pinned = {"upstream": cpus[0], "load": cpus[0], "proxies": cpus[1]} if pin else None
        yield (
            [
                Target("direct", upstream_url, "fake-model", pid=fake.proc.pid),
                Target("minimal", minimal_url, "fake-model", pid=minimal.proc.pid),
                Target(
                    "sparks", f"http://127.0.0.1:{port}/v1", "fake/fake-model", KEY, sparks.proc.pid
                ),
            ],
            pinned,
        )


# ---------------------------------------------------------------- the minimal pass-through


async def serve_minimal_proxy(port: int, upstream: str) -> None:
    """The machine's limit for a Python aiohttp proxy: one pooled session, bytes in, bytes out.

    JSON answers are read whole and sent with a Content-Length (the cheapest way); event
    streams are written back chunk by chunk as they arrive.
    """
    base = upstream.rstrip("/")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
        auto_decompress=False,
    )

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        body = await request.read()
        url = f"{base}/{request.match_info['tail']}"
        async with session.request(
            request.method, url, params=request.query, data=body, headers=headers
        ) as up:
            kind = up.headers.get("Content-Type", "application/octet-stream")
            if not kind.startswith("text/event-stream"):
                return web.Response(
                    status=up.status, body=await up.read(), headers={"Content-Type": kind}
                )
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": kind})
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(
            f"minimal proxy listening on http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True
        )
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        await session.close()


# ---------------------------------------------------------------- load generation


@dataclass
class Block:
    """One measured block: one target, one phase, one round."""

    latencies_ms: list[float] = field(default_factory=list)
    server_timing_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float | None = None  # CPU the target's process used during the block

    @property
    def rps(self) -> float | None:
        return len(self.latencies_ms) / self.wall_s if self.wall_s and self.latencies_ms else None


async def run_requests(
    session: aiohttp.ClientSession, target: Target, count: int, concurrency: int, deadline: float
) -> Block:
    """`count` non-streaming requests from `concurrency` workers (fewer if the deadline passes)."""
    block = Block()
    body, headers, url = target.body(), target.headers, target.chat_url
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok, timing = resp.status == 200, resp.headers.get("Server-Timing")
            except (aiohttp.ClientError, TimeoutError):
                ok, timing = False, None
            if not ok:
                block.errors += 1
                continue
            block.latencies_ms.append((time.perf_counter() - start) * 1000)
            if timing and (match := SERVER_TIMING.search(timing)):
                block.server_timing_ms.append(float(match[1]))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    block.wall_s = time.perf_counter() - start
    return block


async def one_stream(
    session: aiohttp.ClientSession, target: Target, body: bytes
) -> list[float] | None:
    """The request's start, then the arrival time of every `data:` line up to `[DONE]`."""
    times = [time.perf_counter()]
    done = False
    try:
        async with session.post(target.chat_url, data=body, headers=target.headers) as resp:
            if resp.status != 200:
                await resp.read()
                return None
            async for line in resp.content:  # to EOF, so the connection is reused
                if line.startswith(b"data:") and not done:
                    times.append(time.perf_counter())
                    done = line.startswith(b"data: [DONE]")
    except (aiohttp.ClientError, TimeoutError):
        return None
    return times if done else None


async def run_streams(
    session: aiohttp.ClientSession, target: Target, count: int, deadline: float, **fake: float
) -> Block:
    """`count` streams one after another: time to the first event, to `[DONE]`, and the gaps."""
    block = Block()
    body = target.body(stream=True, **fake)
    start = time.perf_counter()
    for _ in range(count):
        if time.perf_counter() >= deadline:
            break
        times = await one_stream(session, target, body)
        if times is None:
            block.errors += 1
            continue
        block.ttft_ms.append((times[1] - times[0]) * 1000)
        block.total_ms.append((times[-1] - times[0]) * 1000)
        block.events.append(len(times) - 1)
        block.gaps_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(times[1:]))
    block.wall_s = time.perf_counter() - start
    return block


Phase = Callable[[aiohttp.ClientSession, Target, Plan, float], Awaitable[Block]]
PHASES: dict[str, Phase] = {
    "nonstream_c1": lambda s, t, p, d: run_requests(s, t, p.c1_requests, 1, d),
    "nonstream_c32": lambda s, t, p, d: run_requests(s, t, p.c32_requests, 32, d),
    "stream": lambda s, t, p, d: run_streams(s, t, p.streams, d, chunks=STREAM_CHUNKS),
    "chunk_gaps": lambda s, t, p, d: run_streams(
        s, t, p.gap_streams, d, chunks=GAP_CHUNKS, chunk_delay_ms=GAP_DELAY_MS
    ),
}


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def measure(
    targets: list[Target], plan: Plan
) -> tuple[dict[str, dict[str, list[Block]]], int]:
    """Warm every target up, then rounds: each phase runs every target in turn, order rotating."""
    results = {t.name: {phase: [] for phase in PHASES} for t in targets}
    rounds = 0
    async with new_session() as session:
        for target in targets:  # open the keep-alive connections, take every path once
            deadline = time.perf_counter() + plan.block_s
            await run_requests(session, target, plan.warmup // 3, 1, deadline)
            await run_requests(session, target, plan.warmup, 32, deadline)
            await run_streams(session, target, 3, deadline, chunks=STREAM_CHUNKS)
        end = time.perf_counter() + plan.total_s
        round_s = 0.0
        while rounds < plan.rounds and time.perf_counter() + round_s < end:
            round_start = time.perf_counter()
            shift = rounds % len(targets)
            order = targets[shift:] + targets[:shift]
            for phase, run in PHASES.items():
                for target in order:
                    cpu_before = cpu_seconds(target.pid)
                    block = await run(session, target, plan, time.perf_counter() + plan.block_s)
                    cpu_after = cpu_seconds(target.pid)
                    if cpu_before is not None and cpu_after is not None:
                        block.cpu_s = cpu_after - cpu_before
                    results[target.name][phase].append(block)
            rounds += 1
            round_s = time.perf_counter() - round_start
    return results, rounds


async def soak(target: Target, requests: int, deadline_s: float) -> dict[str, Any]:
    """`requests` requests through Sparks in batches of 5000: 9 in 10 non-streaming at c=32,
    1 in 10 a short stream (8 at a time); RSS after every batch."""
    end = time.perf_counter() + deadline_s
    before = proc_status_kb(target.pid).get("VmRSS")
    samples: list[dict[str, Any]] = []
    done = errors = 0
    start = time.perf_counter()
    async with new_session() as session:
        while done < requests and time.perf_counter() < end:
            size = min(5000, requests - done)
            streams = max(8, size // 10)
            block = await run_requests(session, target, size - streams, 32, end)
            stream_blocks = await asyncio.gather(
                *(run_streams(session, target, streams // 8, end, chunks=5) for _ in range(8))
            )
            done += len(block.latencies_ms) + sum(len(b.total_ms) for b in stream_blocks)
            errors += block.errors + sum(b.errors for b in stream_blocks)
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


# ---------------------------------------------------------------- reporting


def pooled(blocks: list[Block], attr: str) -> list[float]:
    return [x for b in blocks for x in getattr(b, attr)]


def pooled_rps(blocks: list[Block]) -> float | None:
    wall = sum(b.wall_s for b in blocks)
    return len(pooled(blocks, "latencies_ms")) / wall if wall else None


def target_report(blocks: dict[str, list[Block]]) -> dict[str, Any]:
    """Percentiles pooled over all rounds, and per-round medians for the spread."""
    out: dict[str, Any] = {}
    for phase in ("nonstream_c1", "nonstream_c32"):
        rounds = blocks[phase]
        latencies = pooled(rounds, "latencies_ms")
        cpu = [b.cpu_s for b in rounds if b.cpu_s is not None]
        timings = pooled(rounds, "server_timing_ms")
        out[phase] = {
            "n": len(latencies),
            "errors": sum(b.errors for b in rounds),
            "rps": rounded(pooled_rps(rounds), 1),
            "p50_ms": rounded(percentile(latencies, 50)),
            "p99_ms": rounded(percentile(latencies, 99)),
            "cpu_us_per_request": rounded(sum(cpu) / len(latencies) * 1e6, 1)
            if cpu and latencies
            else None,
            "server_timing_sparks_p50_ms": rounded(percentile(timings, 50)),
            "rounds_p50_ms": spread([percentile(b.latencies_ms, 50) for b in rounds]),
            "rounds_rps": spread([b.rps for b in rounds]),
        }
    rounds = blocks["stream"]
    ttft, total = pooled(rounds, "ttft_ms"), pooled(rounds, "total_ms")
    events = pooled(rounds, "events")
    out["stream"] = {
        "n": len(ttft),
        "errors": sum(b.errors for b in rounds),
        "events_per_stream": statistics.median(events) if events else None,
        "ttft_p50_ms": rounded(percentile(ttft, 50)),
        "ttft_p99_ms": rounded(percentile(ttft, 99)),
        "total_p50_ms": rounded(percentile(total, 50)),
        "total_p99_ms": rounded(percentile(total, 99)),
        "rounds_ttft_p50_ms": spread([percentile(b.ttft_ms, 50) for b in rounds]),
    }
    gaps = pooled(blocks["chunk_gaps"], "gaps_ms")
    # a gateway that drops the `fake` field sends no delay upstream: nothing to judge then
    delayed = bool(gaps) and (percentile(gaps, 50) or 0) >= GAP_DELAY_MS / 2
    out["chunk_gaps"] = {
        "delay_ms": GAP_DELAY_MS,
        "delay_applied": delayed,
        "gaps": len(gaps),
        "batched": sum(g < GAP_DELAY_MS * BATCHED_FRACTION for g in gaps) if delayed else None,
        "gap_p50_ms": rounded(percentile(gaps, 50)),
        "gap_min_ms": rounded(min(gaps) if gaps else None),
        "errors": sum(b.errors for b in blocks["chunk_gaps"]),
    }
    return out


def compare(results: dict[str, dict[str, list[Block]]], name: str) -> dict[str, Any]:
    """One target against direct and the minimal proxy: pooled, and per round for the spread."""
    mine, direct, minimal = results[name], results["direct"], results["minimal"]

    def p50(blocks: list[Block], attr: str = "latencies_ms") -> float | None:
        return percentile(pooled(blocks, attr), 50)

    def added(
        who: dict[str, list[Block]], blocks: slice, attr: str = "latencies_ms"
    ) -> float | None:
        phase = "stream" if attr == "ttft_ms" else "nonstream_c1"
        return diff(p50(who[phase][blocks], attr), p50(direct[phase][blocks], attr))

    every = slice(None)
    rounds = [slice(r, r + 1) for r in range(len(mine["nonstream_c1"]))]
    return {
        "added_p50_ms": rounded(added(mine, every)),
        "minimal_added_p50_ms": rounded(added(minimal, every)),
        "added_ratio_vs_minimal": rounded(ratio(added(mine, every), added(minimal, every))),
        "throughput_c32_rps": rounded(pooled_rps(mine["nonstream_c32"]), 1),
        "minimal_throughput_c32_rps": rounded(pooled_rps(minimal["nonstream_c32"]), 1),
        "throughput_ratio_vs_minimal": rounded(
            ratio(pooled_rps(mine["nonstream_c32"]), pooled_rps(minimal["nonstream_c32"]))
        ),
        "ttft_added_p50_ms": rounded(added(mine, every, "ttft_ms")),
        "rounds": {
            "added_p50_ms": spread([added(mine, r) for r in rounds]),
            "added_ratio_vs_minimal": spread(
                [ratio(added(mine, r), added(minimal, r)) for r in rounds]
            ),
            "throughput_ratio_vs_minimal": spread(
                [
                    ratio(
                        pooled_rps(mine["nonstream_c32"][r]),
                        pooled_rps(minimal["nonstream_c32"][r]),
                    )
                    for r in rounds
                ]
            ),
            "ttft_added_p50_ms": spread([added(mine, r, "ttft_ms") for r in rounds]),
        },
    }


def goals_met(summary: dict[str, Any]) -> dict[str, bool | None]:
    met: dict[str, bool | None] = {}
    for key, (op, limit) in GOALS.items():
        value = summary.get(key)
        met[key] = None if value is None else value <= limit if op == "<=" else value >= limit
    return met


def machine() -> dict[str, Any]:
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": match[1].strip() if match else "unknown",
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
    }


def fmt(value: Any, width: int = 8) -> str:
    text = "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
    return text.rjust(width)


def print_report(report: dict[str, Any]) -> None:
    columns = ("c1 rps", "c1 p50", "c1 p99", "c32 rps", "c32 p50", "c32 p99", "cpu us")
    columns += ("ttft50", "ttft99", "strm50", "strm99", "batched")
    print("\n" + "target".ljust(10) + "".join(c.rjust(9) for c in columns))
    for name, t in report["targets"].items():
        c1, c32, st, gaps = t["nonstream_c1"], t["nonstream_c32"], t["stream"], t["chunk_gaps"]
        cells = (c1["rps"], c1["p50_ms"], c1["p99_ms"], c32["rps"], c32["p50_ms"], c32["p99_ms"])
        cells += (c32["cpu_us_per_request"], st["ttft_p50_ms"], st["ttft_p99_ms"])
        cells += (
            st["total_p50_ms"],
            st["total_p99_ms"],
            f"{fmt(gaps['batched'], 0)}/{gaps['gaps']}",
        )
        print(name.ljust(10) + "".join(fmt(c, 9) for c in cells))
    print(
        "(ms; rps = requests/s; cpu us = the target process's CPU per request at c=32;\n"
        f" ttft = first event; strm = {STREAM_CHUNKS}-chunk stream to [DONE]; batched = gaps under"
        f" {GAP_DELAY_MS * BATCHED_FRACTION:g} ms of {GAP_DELAY_MS:g} ms)"
    )
    s, met = report["summary"], report["targets_met"]
    verdicts = {True: "met", False: "NOT MET", None: "n/a"}
    print(f"\nSparks over {report['meta']['rounds_completed']} rounds [min..max of rounds]")
    rows = [
        ("added latency p50, ms (sparks - direct)", "added_p50_ms"),
        ("  minimal proxy's added p50, ms", "minimal_added_p50_ms"),
        ("  Server-Timing sparks;dur p50, ms", "server_timing_sparks_p50_ms"),
        ("added / minimal's added (<= 1.3)", "added_ratio_vs_minimal"),
        ("throughput c32, sparks / minimal (>= 0.75)", "throughput_ratio_vs_minimal"),
        ("  CPU per request, sparks / minimal", "cpu_ratio_vs_minimal"),
        ("TTFT added p50, ms (<= 1)", "ttft_added_p50_ms"),
        ("batched chunks (0)", "batched_chunks"),
        ("idle RSS, MB (<= 60)", "idle_rss_mb"),
        ("  peak RSS, MB", "peak_rss_mb"),
        ("soak RSS growth, % (<= 10)", "soak_rss_growth_pct"),
    ]
    for label, key in rows:
        per_round = s["rounds"].get(key)
        extra = f"  [{per_round['min']}..{per_round['max']}]" if per_round else ""
        verdict = f"  {verdicts[met[key]]}" if key in met else ""
        print(f"  {label:<46}{fmt(s[key], 9)}{extra}{verdict}")
    for name, vs in report["vs"].items():
        print(
            f"\n{name}: added p50 {fmt(vs['added_p50_ms'], 0)} ms "
            f"({fmt(vs['added_ratio_vs_minimal'], 0)}x minimal's); c32 throughput "
            f"{fmt(vs['throughput_ratio_vs_minimal'], 0)}x minimal's; TTFT added "
            f"{fmt(vs['ttft_added_p50_ms'], 0)} ms"
        )


def summarize_runs(paths: list[str]) -> None:
    """Median and range of the headline figures over several bench JSON files."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    print(f"{len(reports)} runs: median  [min .. max]")
    for key in reports[0]["summary"]:
        if key != "rounds":
            s = spread([r["summary"].get(key) for r in reports])
            print(f"  {key:<36}{fmt(s['median'], 10)}  [{s['min']} .. {s['max']}]")
    for name, phases in reports[0]["targets"].items():
        for phase, figures in phases.items():
            for figure, value in figures.items():
                if isinstance(value, int | float) and figure not in ("n", "delay_ms"):
                    s = spread([r["targets"][name][phase][figure] for r in reports])
                    label = f"{name} {phase} {figure}"
                    print(f"  {label:<46}{fmt(s['median'], 10)}  [{s['min']} .. {s['max']}]")


# ---------------------------------------------------------------- main


def parse_vs(specs: list[str], model: str, pids: list[str], allow_remote: bool) -> list[Target]:
    """`NAME=URL[,KEY]` → targets; refuses non-loopback URLs unless `allow_remote`."""
    pid_of = {}
    for item in pids:
        name, _, pid = item.partition("=")
        if not pid.isdigit():
            raise SystemExit(f"bench: --vs-pid expects NAME=PID, got {item!r}")
        pid_of[name] = int(pid)
    targets = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep or not name or not rest or name in BUILTIN:
            raise SystemExit(f"bench: --vs expects NAME=URL[,KEY] with a new NAME, got {spec!r}")
        url, _, key = rest.partition(",")
        host = urlsplit(url).hostname or ""
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local and not allow_remote:
            raise SystemExit(f"bench: {url} is not loopback; pass --allow-remote to measure it")
        url = url.rstrip("/")
        url = url if url.endswith("/v1") else url + "/v1"
        targets.append(Target(name, url, model, key or None, pid_of.get(name)))
    return targets


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    if args.rounds:
        plan = replace(plan, rounds=args.rounds, total_s=plan.total_s * args.rounds / plan.rounds)
    vs = parse_vs(args.vs, args.vs_model, args.vs_pid, args.allow_remote)
    started, load_before = time.time(), os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="sparks-bench-") as tmp,
        started_fleet(Path(tmp), args.pin) as (builtin, pinned),
    ):
        targets = builtin + vs
        sparks = builtin[2]
        startup = proc_status_kb(sparks.pid)
        results, rounds = asyncio.run(measure(targets, plan))
        time.sleep(0.5)
        idle = proc_status_kb(sparks.pid)
        report: dict[str, Any] = {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "argv": sys.argv[1:],
                "plan": plan.__dict__,
                "rounds_completed": rounds,
                "pinned": pinned,
                "machine": machine(),
                "loadavg_before": round(load_before, 2),
                "load_generator": "aiohttp, one keep-alive session, in the bench process on the "
                "same machine as the servers",
            },
            "targets": {t.name: target_report(results[t.name]) for t in targets},
            "rss_mb": {
                t.name: {"rss": mb(status.get("VmRSS")), "peak": mb(status.get("VmHWM"))}
                for t in targets
                if (status := proc_status_kb(t.pid))
            },
        }
        sparks_c1 = report["targets"]["sparks"]["nonstream_c1"]
        cpu = {n: report["targets"][n]["nonstream_c32"]["cpu_us_per_request"] for n in BUILTIN}
        gaps = report["targets"]["sparks"]["chunk_gaps"]
        summary = compare(results, "sparks")
        summary.update(
            server_timing_sparks_p50_ms=sparks_c1["server_timing_sparks_p50_ms"],
            cpu_us_per_request_c32=cpu["sparks"],
            minimal_cpu_us_per_request_c32=cpu["minimal"],
            cpu_ratio_vs_minimal=rounded(ratio(cpu["sparks"], cpu["minimal"])),
            batched_chunks=gaps["batched"],
            startup_rss_mb=mb(startup.get("VmRSS")),
            idle_rss_mb=mb(idle.get("VmRSS")),
            peak_rss_mb=mb(idle.get("VmHWM")),
            soak_rss_growth_pct=None,
        )
        report["summary"] = summary
        report["vs"] = {t.name: compare(results, t.name) for t in vs}
        report["soak"] = None
        if args.soak:
            count = min(args.soak, SOAK_MAX)
            print(f"bench: soak, {count} requests through sparks…", file=sys.stderr, flush=True)
            report["soak"] = asyncio.run(soak(sparks, count, args.soak_deadline))
            summary["soak_rss_growth_pct"] = report["soak"]["growth_pct"]
        report["targets_met"] = goals_met(summary)
        report["meta"]["loadavg_after"] = round(os.getloadavg()[0], 2)
        report["meta"]["seconds"] = round(time.time() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark Sparks against a direct call and a minimal proxy."
    )
    parser.add_argument("--quick", action="store_true", help="a ~10 s run (the smoke test)")
    parser.add_argument("--out", help="JSON report path (default: bench-<timestamp>.json)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 12, quick 3)")
    parser.add_argument(
        "--pin", action="store_true", help="proxies on one core, upstream and load on another"
    )
    parser.add_argument(
        "--vs", action="append", default=[], metavar="NAME=URL[,KEY]", help="another gateway"
    )
    parser.add_argument("--vs-model", default="fake-model", help="model id sent to --vs gateways")
    parser.add_argument(
        "--vs-pid", action="append", default=[], metavar="NAME=PID", help="for its RSS and CPU"
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback --vs")
    parser.add_argument("--soak", type=int, metavar="N", help=f"then N requests (<= {SOAK_MAX})")
    parser.add_argument("--soak-deadline", type=float, default=900.0, metavar="SECONDS")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="summarize earlier runs")
    parser.add_argument(
        "--minimal-proxy", nargs=2, metavar=("PORT", "UPSTREAM"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.minimal_proxy:
        asyncio.run(serve_minimal_proxy(int(args.minimal_proxy[0]), args.minimal_proxy[1]))
        return
    if args.summarize:
        summarize_runs(args.summarize)
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
    print_report(report)
    print(f"\nwrote {out} ({report['meta']['seconds']} s)")


if __name__ == "__main__":
    main()
