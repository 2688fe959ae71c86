"""The servers scripts/bench.py measures, started as subprocesses on 127.0.0.1 and pinned.

The fake upstream, the minimal pass-through and `sparks serve` share one core; the load
generator (this process and the `wrk` it starts) has the other, so a proxy competes only with
the upstream it would have in real use, never with the client. Children inherit the core this
process is pinned to when it starts them, which pins every thread they will ever have.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
KEY = "sk-bench-0123456789abcdef0123456789abcdef"
LISTENING = re.compile(r"listening on (http://\S+)")
BUILTIN = ("direct", "minimal", "sparks")


@dataclass
class Target:
    name: str
    base_url: str  # …/v1
    model: str
    key: str | None = None
    pid: int | None = None  # for RSS and CPU, when known

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    @property
    def chat_path(self) -> str:
        return urlsplit(self.base_url).path + "/chat/completions"

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
        """A chat request; streams ask for usage, as coding tools do (so every chunk carries
        `"usage":null` in the OpenAI shape)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "ping"}],
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if fake:
            body["fake"] = fake  # fake_upstream's per-request control; gateways forward it
        return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Layout:
    """Which core runs what; `note` says why nothing is pinned, when it is not."""

    pinned: bool
    load_cpu: int | None
    server_cpu: int | None
    note: str | None

    def describe(self) -> str:
        if self.pinned:
            return (
                f"upstream and proxies pinned to CPU {self.server_cpu}, "
                f"load generator to CPU {self.load_cpu}"
            )
        return f"not pinned: {self.note}"


def choose_layout(pin: bool) -> Layout:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return Layout(False, None, None, "--no-pin")
    if len(cpus) < 2:
        return Layout(
            False,
            None,
            None,
            "this machine gives the bench ONE core: upstream, proxies and load generator share "
            "it, so every figure includes the client's own work (ratios still compare like "
            "with like, but not what users feel)",
        )
    return Layout(True, cpus[0], cpus[1], None)


def proc_status_kb(pid: int | None) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) from /proc/PID/status; empty when unavailable."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def allowed_cpus(pid: int | None) -> str | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return None
    match = re.search(r"^Cpus_allowed_list:\s+(\S+)", text, re.M)
    return match[1] if match else None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU a process (all its threads) has used so far, from /proc/PID/stat."""
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

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path):
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

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
    """Nothing of the user's: temp XDG dirs, no OS keyring, the bench key in the env.
    SPARKS_EVENT_LOOP passes through, to measure Sparks on asyncio's loop."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPARKS_") or k == "SPARKS_EVENT_LOOP"
    }
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


def sparks_config(tmp: Path, port: int, upstream_url: str) -> Path:
    """A config outside the repository and outside every ghost's workspace (Sparks ignores a
    ./config.toml a ghost could write, and refuses a workspace holding its config)."""
    config = tmp / "sparks.toml"
    config.write_text(
        f'[openai_api]\nbind = "127.0.0.1:{port}"\nrequests_per_minute = 0\n'
        f'[observer]\npath = "{tmp / "events.jsonl"}"\nconsole = false\n'
        f'[backends.fake]\nbase_url = "{upstream_url}"\n'
    )
    return config


@contextmanager
def started_fleet(
    tmp: Path, layout: Layout, chunk_shape: str
) -> Iterator[tuple[list[Target], int | None, dict[str, str | None]]]:
    """Fake upstream, minimal proxy and Sparks; all stopped when the block exits, however.
    Yields the targets, the upstream's pid and each child's allowed CPUs."""
    env = child_env(tmp)
    workdir = tmp / "work"  # the children's cwd: the default ghosts' workspace, empty
    workdir.mkdir()
    python = sys.executable
    if layout.pinned:
        os.sched_setaffinity(0, {layout.server_cpu})  # inherited by the children started now
    with ExitStack() as stack:

        def start(name: str, argv: list[str]) -> Child:
            child = Child(name, argv, env, tmp / f"{name.replace(' ', '-')}.log", workdir)
            stack.callback(child.stop)
            return child

        try:
            upstream = [str(SCRIPTS / "fake_upstream.py"), "--port", "0"]
            fake = start("fake upstream", [python, *upstream, "--chunk-shape", chunk_shape])
            upstream_url = fake.wait_for_url()
            minimal = start(
                "minimal proxy", [python, str(SCRIPTS / "bench_proxy.py"), "0", upstream_url]
            )
            port = free_port()
            config = sparks_config(tmp, port, upstream_url)
            sparks = start("sparks", [python, "-m", "sparks", "serve", "--config", str(config)])
        finally:
            if layout.pinned:
                os.sched_setaffinity(0, {layout.load_cpu})
        minimal_url = minimal.wait_for_url()
        sparks.wait_healthy(f"http://127.0.0.1:{port}/health")
        targets = [
            Target("direct", upstream_url, "fake-model", pid=fake.proc.pid),
            Target("minimal", minimal_url, "fake-model", pid=minimal.proc.pid),
            Target(
                "sparks", f"http://127.0.0.1:{port}/v1", "fake/fake-model", KEY, sparks.proc.pid
            ),
        ]
        cpus = {t.name: allowed_cpus(t.pid) for t in targets}
        cpus["load generator"] = allowed_cpus(os.getpid())
        yield targets, fake.proc.pid, cpus


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
