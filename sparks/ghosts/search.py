"""The `search` tool: ripgrep inside the jail when both work here, else a confined Python walk.

Ripgrep runs only jailed (workspace read-only, secrets and `.git` hidden, no symlink
following), so no option, symlink or race can take it outside. The Python walk opens every
directory and file through descriptors (listing.py) and reads at most a cap per file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path, PurePath

from sparks.ghosts.jail import SYSTEM_PATHS, bwrap_problem, jail_argv, jail_masks
from sparks.ghosts.listing import NOT_EXPANDED_DIR_NAMES, visible_files
from sparks.ghosts.secrets import (
    HISTORY_DIR_NAMES,
    SECRET_DIR_NAMES,
    SECRET_FILE_GLOBS,
    MaskScanError,
    is_hidden,
)
from sparks.ghosts.workspace import display, looks_binary, open_entry, read_capped

MAX_FILE_BYTES = 2 << 20
_RG_FLAGS = (
    "--no-config --no-follow --line-number --no-heading --with-filename --null --color=never "
    "--hidden --max-filesize=8M --max-columns=400 --max-columns-preview"
).split()

Hit = tuple[str, int, str]


class SearchError(ValueError):
    """An invalid pattern (or a ripgrep failure); the message says what the model got wrong."""


def jailed_ripgrep() -> str | None:
    """ripgrep's path if it can run in the jail (installed in a system directory, jail works)."""
    found = shutil.which("rg")
    if found is None or bwrap_problem() is not None:
        return None
    real = os.path.realpath(found)
    inside = any(real.startswith(os.path.realpath(p) + "/") for p in SYSTEM_PATHS)
    return real if inside else None


async def search_workspace(
    workspace: Path, raw_start: str, pattern: str, glob: str | None, max_hits: int, timeout_s: float
) -> tuple[str, list[Hit]]:
    """(shown start, [(path, line number, line)]) over visible files beneath `raw_start`."""
    fd, parts, _ = await asyncio.to_thread(open_entry, workspace, raw_start, allow_dir=True)
    os.close(fd)  # validated; ripgrep or the walk opens it again, confined its own way
    rg = jailed_ripgrep()
    if rg is not None:
        try:
            masks = await asyncio.to_thread(jail_masks, workspace, timeout_s)
        except MaskScanError:
            rg = None
    if rg is not None:
        prefix = jail_argv(workspace, True, masks, timeout_s)
        hits = await _ripgrep(prefix, rg, workspace, display(parts), pattern, glob, max_hits)
        return display(parts), hits
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise SearchError(f"invalid regex: {exc}") from None
    deadline = time.monotonic() + timeout_s
    hits = await asyncio.to_thread(
        grep_beneath, workspace, raw_start, regex, glob, max_hits, deadline
    )
    return display(parts), hits


async def _ripgrep(
    prefix: list[str],
    rg: str,
    workspace: Path,
    start: str,
    pattern: str,
    glob: str | None,
    max_hits: int,
) -> list[Hit]:
    """Ripgrep in the jail with the same exclusions; killed once `max_hits` is reached."""
    excluded = [*HISTORY_DIR_NAMES, *NOT_EXPANDED_DIR_NAMES, *SECRET_DIR_NAMES, *SECRET_FILE_GLOBS]
    argv = [*prefix, rg, *_RG_FLAGS, *(["--glob", glob] if glob else [])]
    argv += [f"--iglob=!{name}" for name in excluded]  # after --glob, so these win
    argv += ["-e", pattern, "--", start]
    pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace,
        limit=2**24,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin"},
        **pipes,
    )
    hits: list[Hit] = []
    messages: list[str] = []
    try:
        while len(hits) < max_hits and (raw := await proc.stdout.readline()):
            line = raw.decode("utf-8", "replace")
            rel, nul, rest = line.partition("\0")
            number, _, text = rest.partition(":")
            rel = rel.removeprefix("./")
            if not nul or not number.isdigit():
                messages.append(line.rstrip())
            elif not is_hidden(PurePath(rel), False):
                hits.append((rel, int(number), text))
    finally:
        if proc.returncode is None:  # not proc.kill(): its poll() races asyncio's child watcher
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.communicate()
    if proc.returncode == 2 and not hits:  # e.g. a regex parse error
        raise SearchError("\n".join(messages[:20]) or "ripgrep failed")
    return hits


def grep_beneath(
    workspace: Path,
    raw_start: str,
    regex: re.Pattern[str],
    glob: str | None,
    max_hits: int,
    deadline: float,
) -> list[Hit]:
    """Matches in visible text files, every open confined; stops at `max_hits` or `deadline`."""
    fd, parts, is_dir = open_entry(workspace, raw_start, allow_dir=True)
    hits: list[Hit] = []
    try:
        files = (
            visible_files(fd, PurePath(*parts), deadline) if is_dir else [(fd, PurePath(*parts))]
        )
        for file_fd, rel in files:
            if glob and not fnmatch.fnmatch(rel.as_posix() if "/" in glob else rel.name, glob):
                continue
            data, _ = read_capped(file_fd, MAX_FILE_BYTES)
            if looks_binary(data):
                continue
            text = data.decode("utf-8", "replace")
            for number, line in enumerate(text.split("\n"), start=1):
                if regex.search(line):
                    hits.append((rel.as_posix(), number, line))
                    if len(hits) >= max_hits:
                        return hits
    finally:
        os.close(fd)
    return hits
