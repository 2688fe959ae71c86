"""The bubblewrap jail every ghost `shell` command (and the ripgrep search) runs in.

Inside: the system directories read-only (/usr and the /bin, /lib links; a handful of /etc
files programs need), the workspace (read-only for `read_only` ghosts), empty /tmp and home,
nothing else of the host. Secret files anywhere in the workspace are covered with an empty
file, `.git` and secret directories with an empty read-only directory (see secrets.py). No
network, a new PID namespace (everything dies with the call), no capabilities, a user
namespace, and rlimits on processes, file size, CPU time and core dumps.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

from sparks.ghosts.secrets import Masks, scan_masks

SANDBOX_MODES = ("auto", "bwrap", "none")
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/nix/store")
ETC_FILES = (
    "passwd group hosts nsswitch.conf localtime timezone ld.so.cache ld.so.conf ld.so.conf.d "
    "alternatives magic magic.mime mime.types protocols services os-release locale.alias"
).split()
"""What of /etc is visible: name lookup, the dynamic linker, `file`; not ssl, gitconfig, shadow."""

JAIL_HOME = "/tmp/home"
JAIL_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
MAX_PROCESSES = 256
MAX_FILE_BYTES = 1 << 30
MASK_SCAN_S = 10.0
_NAMESPACES = "--unshare-all --unshare-user --die-with-parent --new-session --cap-drop ALL".split()


class SandboxUnavailable(RuntimeError):
    """The jail cannot run here; the message says why, for the model, `serve` and `doctor`."""


def _system_mounts() -> list[str]:
    argv: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", JAIL_HOME]
    return argv


def _prlimit() -> str | None:
    """prlimit from a system directory, so it exists inside the jail too."""
    found = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return os.path.realpath(found) if found else None


@functools.cache
def bwrap_problem() -> str | None:
    """Why the jail cannot run here, or None; cached: tools, serve and doctor all ask."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    prlimit = _prlimit()
    if prlimit is None:
        return "prlimit (util-linux) is not installed"
    probe = [bwrap, *_system_mounts(), *_NAMESPACES, "--", prlimit, "--nproc=64", "/bin/true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return (
            f"bwrap cannot create its namespaces here ({detail[-1] if detail else done.returncode})"
        )
    return None


def sandbox_in_effect(sandbox: str) -> str:
    """The jail `shell` really uses for a configured `sandbox` value: "bwrap" or "none".

    Raises SandboxUnavailable for `bwrap` without a working bubblewrap; with `auto` and no
    working bubblewrap the answer is "none", which means *no shell* unless the user chose it.
    """
    if sandbox not in SANDBOX_MODES:
        raise ValueError(f"sandbox must be one of auto, bwrap, none; got {sandbox!r}")
    if sandbox == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if sandbox == "bwrap":
        raise SandboxUnavailable(
            f'sandbox = "bwrap" but {problem}; install the bubblewrap package '
            'or set sandbox = "auto" or "none"'
        )
    return "none"


def jail_unavailable_reason(sandbox: str, read_only: bool) -> str | None:
    """Why a ghost with this `sandbox` and `read_only` gets no shell, or None if it gets one."""
    if sandbox == "none":
        if read_only:
            return (
                'sandbox = "none" and the ghost is read_only: a read-only ghost\'s shell runs '
                "only inside the bubblewrap jail"
            )
        return None
    problem = bwrap_problem()
    if problem is None:
        return None
    return f"{problem}; shell runs only inside the bubblewrap jail (Linux), not offered"


def jail_masks(workspace: Path, within_s: float) -> Masks:
    """What to hide in this workspace now (raises MaskScanError when it cannot tell in time)."""
    return scan_masks(workspace, time.monotonic() + min(within_s, MASK_SCAN_S))


def limits_argv(timeout_s: float, jailed: bool) -> list[str]:
    """prlimit options: processes (only jailed: outside, the count is the user's whole total),
    file size, CPU seconds, no core dumps."""
    prlimit = _prlimit()
    if prlimit is None:
        return []
    argv = [prlimit, f"--fsize={MAX_FILE_BYTES}", f"--cpu={math.ceil(timeout_s) + 1}", "--core=0"]
    if jailed:
        argv.append(f"--nproc={MAX_PROCESSES}")
    return [*argv, "--"]


def jail_argv(workspace: Path, read_only: bool, masks: Masks, timeout_s: float) -> list[str]:
    """The bwrap and prlimit prefix for a command jailed to `workspace`."""
    bwrap = shutil.which("bwrap") or "bwrap"
    ws = str(workspace)
    argv = [bwrap, *_system_mounts(), "--ro-bind" if read_only else "--bind", ws, ws]
    for rel in masks.files:
        argv += ["--ro-bind", "/dev/null", str(workspace / rel)]
    for rel in masks.dirs:
        where = str(workspace / rel)
        argv += ["--perms", "0555", "--tmpfs", where, "--remount-ro", where]
    argv += ["--remount-ro", "/", *_NAMESPACES, "--chdir", ws]
    return [*argv, "--", *limits_argv(timeout_s, jailed=True)]
