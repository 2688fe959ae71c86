"""The ghost `shell` tool: run a command in the workspace, bounded in time, output and reach.

What bounds a command:

* Environment: secrets are scrubbed (`*_API_KEY`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
  `SPARKS_*`, `AWS_*`, agent and D-Bus sockets, URLs with embedded passwords, ...). HOME is
  left as it is: without the jail, pointing it elsewhere would not stop a command reading
  `/home/you/...` by absolute path; inside the jail the real home is an empty tmpfs anyway.
* Time and output: every call has a timeout; the command runs in a new session, and on
  timeout, on cancellation (client gone) and after it exits its whole process group is
  SIGKILLed, so background jobs do not outlive the call (without the jail, a process that
  starts its own session escapes this; in the jail the PID namespace dies with it).
  Output is stdout+stderr, head and tail kept, capped in bytes.
* The bwrap jail (`sandbox = "bwrap"`, or `"auto"` when bubblewrap works here): the system
  is read-only, /tmp and /run are empty tmpfs (no docker, D-Bus or agent sockets), the
  user's home is an empty tmpfs (so tools installed under it are missing too), the
  workspace is the only writable place (read-only for read-only ghosts), secret files in
  the top two levels of the workspace are masked, there is no network, and the command
  gets no capabilities and its own PID namespace. It does not hide other readable files
  outside home (e.g. /etc, /opt), nor secrets deeper in the workspace or in git history.
* Read-only ghosts: the command is split with `shlex` and run without a shell interpreter;
  shell syntax (pipes, redirects, `;`, `&&`, `$(...)`, variables, unquoted globs) is
  refused, the program must be on a read-only allowlist (readonly_commands.py), known writing or executing
  options are refused (`find -exec/-delete`, `sort -o`, `rg --pre`, `git diff --output`),
  and arguments are checked as workspace paths. That check is best effort (a program can
  open paths it was not given, and the repository's own git config is trusted); without
  the jail it is the only boundary.
* Without the jail (`sandbox = "none"`), a read-write ghost's command runs as you, with
  your files and network: the scrubbed environment is the only protection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sparks.ghosts.readonly_commands import ShellRefused, read_only_argv
from sparks.ghosts.workspace import find_secret_entries

__all__ = ["SandboxUnavailable", "ShellRefused", "ShellRun", "read_only_argv", "run_shell"]

TRUNCATION_MARKER = "\n[… truncated {n} bytes]"


_SECRET_ENV = (
    "*API_KEY* *APIKEY* *TOKEN* *SECRET* *PASSWORD* *PASSWD* *_PASS *CREDENTIAL* *PRIVATE_KEY* "
    "*_KEY *_AUTH *_AUTH_* *COOKIE* *_DSN SPARKS_* AWS_* AZURE_* SSH_AUTH_SOCK GPG_AGENT_INFO "
    "DBUS_SESSION_BUS_ADDRESS KUBECONFIG RIPGREP_CONFIG_PATH POSIXLY_CORRECT"
).split()
_URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
_FIXED_ENV = dict(
    PAGER="cat",
    GIT_PAGER="cat",
    GIT_TERMINAL_PROMPT="0",
    GIT_OPTIONAL_LOCKS="0",
    TERM="dumb",
    NO_COLOR="1",
)
_JAIL_MOUNTS = "--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /run".split()
_JAIL_FLAGS = "--unshare-all --die-with-parent --new-session --cap-drop ALL".split()
_DRAIN_S = 0.5


class SandboxUnavailable(RuntimeError):
    """`sandbox = "bwrap"` is configured but bubblewrap is missing or cannot run here."""


@dataclass(frozen=True)
class ShellRun:
    """What a finished (or timed-out) command left behind, for tools.py to word."""

    exit_code: int | None  # None when timed out; negative when killed by a signal
    output: str
    timed_out: bool


@functools.cache
def _bwrap_probe() -> tuple[str | None, str | None]:
    """(bwrap path, problem); run once because user namespaces rarely change under us."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bubblewrap (bwrap) is not installed"
    probe = [bwrap, *_JAIL_MOUNTS, *_JAIL_FLAGS, "--", "/bin/true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"bwrap failed to start: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return None, f"bwrap does not work here ({detail[-1] if detail else done.returncode})"
    return bwrap, None


def sandbox_in_effect(sandbox: str) -> str:
    """The jail `shell` really uses for a configured `sandbox` value: "bwrap" or "none"."""
    if sandbox == "none":
        return "none"
    if sandbox not in ("auto", "bwrap"):
        raise ValueError(f"sandbox must be one of auto, bwrap, none; got {sandbox!r}")
    _, problem = _bwrap_probe()
    if problem is None:
        return "bwrap"
    if sandbox == "bwrap":
        raise SandboxUnavailable(
            f'sandbox = "bwrap" but {problem}; install the bubblewrap package '
            'or set sandbox = "auto" or "none"'
        )
    return "none"


def scrubbed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` without credentials, so a command cannot pass them on."""
    env = {}
    for name, value in environ.items():
        upper = name.upper()
        if any(fnmatch.fnmatchcase(upper, pattern) for pattern in _SECRET_ENV):
            continue
        if _URL_WITH_PASSWORD.search(value):
            continue
        env[name] = value
    env.update(_FIXED_ENV)
    env.setdefault("PATH", os.defpath)
    return env


def bwrap_argv(bwrap: str, workspace: Path, read_only: bool, home: str | None) -> list[str]:
    """The bwrap prefix for a command jailed to `workspace` (see the module docstring)."""
    ws = str(workspace)
    bind = ["--ro-bind" if read_only else "--bind", ws, ws]
    hide_home = ["--tmpfs", home] if home and home != "/" and Path(home).is_dir() else []
    # Mounts stack in order: an empty home must go under a workspace inside it, over one around it.
    inside_home = bool(hide_home) and workspace.is_relative_to(home)
    argv = [bwrap, *_JAIL_MOUNTS, *(hide_home + bind if inside_home else bind + hide_home)]
    for secret in find_secret_entries(workspace):
        if secret.is_dir():
            argv += ["--tmpfs", str(secret)]
        else:
            argv += ["--ro-bind", "/dev/null", str(secret)]
    argv += [*_JAIL_FLAGS, "--chdir", ws, "--"]
    return argv


class _OutputBuffer:
    """Keeps the head and tail of a byte stream within `limit`, counting what it drops."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 2) // 2
        self.tail_limit = max(limit, 2) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.tail_limit:
            del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        if dropped <= 0:
            return (self.head + self.tail).decode("utf-8", "replace")
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        return head + TRUNCATION_MARKER.format(n=dropped) + "\n" + tail


def _watch_pipe(fd: int, buffer: _OutputBuffer) -> asyncio.Future[None]:
    """Feed `fd` into `buffer` from the event loop; the future resolves at EOF."""
    loop = asyncio.get_running_loop()
    eof: asyncio.Future[None] = loop.create_future()
    os.set_blocking(fd, False)

    def on_readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            buffer.feed(data)
            return
        loop.remove_reader(fd)
        if not eof.done():
            eof.set_result(None)

    loop.add_reader(fd, on_readable)
    return eof


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_process(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float, max_output_bytes: int
) -> ShellRun:
    """Run argv in its own session; its process group dies on exit, timeout or cancellation."""
    buffer = _OutputBuffer(max_output_bytes)
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    eof = _watch_pipe(read_fd, buffer)
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        _kill_group(proc.pid)
        await proc.wait()
        # What is already in the pipe is read; a straggler that left the group may hold it open.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_S):
                await eof
    finally:
        _kill_group(proc.pid)
        asyncio.get_running_loop().remove_reader(read_fd)
        os.close(read_fd)
        if proc.returncode is None:
            await proc.wait()
    return ShellRun(None if timed_out else proc.returncode, buffer.text(), timed_out)


async def run_shell(
    command: str,
    *,
    workspace: Path,
    read_only: bool,
    sandbox: str,
    timeout_s: float,
    max_output_bytes: int,
) -> ShellRun:
    """Run a ghost's command (raises ShellRefused or SandboxUnavailable before starting it)."""
    env = scrubbed_env(os.environ)
    argv = read_only_argv(command, workspace, env) if read_only else ["/bin/sh", "-c", command]
    if await asyncio.to_thread(sandbox_in_effect, sandbox) == "bwrap":
        bwrap = _bwrap_probe()[0] or "bwrap"
        argv = bwrap_argv(bwrap, workspace, read_only, env.get("HOME")) + argv
    return await run_process(argv, workspace, env, timeout_s, max_output_bytes)
