"""The ghost `shell` tool: one command, jailed, with a bounded time, output and environment.

A command runs only inside the bubblewrap jail (jail.py), except for a ghost that is not
`read_only` and whose config says `sandbox = "none"`: that one runs unjailed, by the user's
explicit choice. Either way:

* Environment: built from an allowlist (`PATH`, `HOME`, `LANG`, `LC_*`, `TZ`) plus fixed
  settings (`TERM=dumb`, pagers off, git never prompts); nothing else of the daemon's
  environment (keys, tokens, `MYSQL_PWD`, webhook URLs, agent sockets) reaches the command.
  In the jail `PATH` is the system's and `HOME` an empty tmpfs.
* Time and output: the command runs in a new session; on timeout, on cancellation (client
  gone) and after it exits its whole process group is SIGKILLed (in the jail the PID
  namespace dies with it). Output is stdout+stderr, head and tail kept, capped in bytes.
* Limits: prlimit caps processes (jailed), file size, CPU seconds and core dumps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sparks.ghosts.jail import (
    JAIL_HOME,
    JAIL_PATH,
    SandboxUnavailable,
    jail_argv,
    jail_masks,
    jail_unavailable_reason,
    limits_argv,
    sandbox_in_effect,
)
from sparks.ghosts.secrets import MaskScanError

__all__ = ["SandboxUnavailable", "ShellRefused", "ShellRun", "run_shell", "sandbox_in_effect"]

TRUNCATION_MARKER = "\n[… truncated {n} bytes]"
PASSED_ENV = ("PATH", "HOME", "LANG", "TZ")
PASSED_ENV_PREFIXES = ("LC_",)
FIXED_ENV = {
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "TERM": "dumb",
    "NO_COLOR": "1",
}
_DRAIN_S = 0.5


class ShellRefused(ValueError):
    """The command cannot run for this ghost here; the message says why."""


@dataclass(frozen=True)
class ShellRun:
    """What a finished (or timed-out) command left behind, for tools.py to word."""

    exit_code: int | None  # None when timed out; negative when killed by a signal
    output: str
    timed_out: bool


def shell_env(environ: Mapping[str, str], jailed: bool) -> dict[str, str]:
    """The command's whole environment: the allowlist, jail paths when jailed, fixed settings."""
    env = {
        name: value
        for name, value in environ.items()
        if name in PASSED_ENV or name.startswith(PASSED_ENV_PREFIXES)
    }
    if jailed:
        env.update(PATH=JAIL_PATH, HOME=JAIL_HOME, TMPDIR="/tmp")
    env.setdefault("PATH", os.defpath)
    env.update(FIXED_ENV)
    return env


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
    """Run a ghost's command in the jail (or unjailed where allowed); raises ShellRefused or
    SandboxUnavailable before starting anything."""
    mode = await asyncio.to_thread(sandbox_in_effect, sandbox)
    if mode != "bwrap":
        reason = await asyncio.to_thread(jail_unavailable_reason, sandbox, read_only)
        if reason is not None:
            raise ShellRefused(f"shell is not available: {reason}")
    argv = ["/bin/sh", "-c", command]
    if mode == "bwrap":
        try:
            masks = await asyncio.to_thread(jail_masks, workspace, timeout_s)
        except MaskScanError as exc:
            raise ShellRefused(
                f"{exc}; no command runs where secrets could not be hidden"
            ) from None
        argv = jail_argv(workspace, read_only, masks, timeout_s) + argv
    else:
        argv = limits_argv(timeout_s, jailed=False) + argv
    env = shell_env(os.environ, jailed=mode == "bwrap")
    return await run_process(argv, workspace, env, timeout_s, max_output_bytes)
