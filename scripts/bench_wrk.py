"""`wrk`, the compiled load generator scripts/bench.py uses for non-streaming requests.

Debian and Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`. Without it the bench falls
back to its Python client (bench_http.py) and says so: a Python client costs more per request
than the proxy it measures, which understates every proxy's throughput alike.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from bench_report import Block

INSTALL_HINT = "install it with `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"
SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH-WRK %d %d %d %d %.1f %.1f\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_version() -> str | None:
    """`wrk 4.1.0` or the like, None when wrk is not on PATH."""
    path = shutil.which("wrk")
    if path is None:
        return None
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    return " ".join(first[0].split()[:2]) if first else "wrk"


def write_script(directory: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path = directory / f"wrk-{name}.lua"
    path.write_text(SCRIPT.format(body=body.decode(), headers=lines))
    return path


def parse_output(text: str) -> Block:
    """The `BENCH-WRK` line the script's `done` writes → a Block (latencies in ms)."""
    for line in text.splitlines():
        if line.startswith("BENCH-WRK "):
            requests, duration_us, status, socket, p50_us, p99_us = line.split()[1:7]
            bad = int(status)
            return Block(
                generator="wrk",
                n=int(requests) - bad,
                errors=bad + int(socket),
                wall_s=int(duration_us) / 1e6,
                wrk_p50_ms=float(p50_us) / 1000,
                wrk_p99_ms=float(p99_us) / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{text[-2000:]}")


async def wrk_block(url: str, script: Path, connections: int, seconds: int) -> Block:
    """One run of wrk: `connections` keep-alive connections on one thread for `seconds`."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(script), url]
    done = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=seconds + 30
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return parse_output(done.stdout)
