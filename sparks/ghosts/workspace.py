"""What a ghost's file tools may see and touch in its workspace.

Every path a model names goes through `resolve_in_workspace`: it is resolved with
symlinks followed (so `..`, absolute paths and symlinks that leave the workspace,
including a symlinked directory in the middle of the path, are all caught) and refused
when any component looks like a credential. Listings and searches (`visible_tree`,
`search_workspace`) skip such files and `.git` silently, so their content cannot leak
through a regex either.

These checks cover the file tools. A process started by the `shell` tool can open
whatever its OS user can; only the bwrap jail (see `shell.py`) bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePath

SECRET_DIR_NAMES = frozenset({".ssh", ".aws", ".gnupg"})
"""Directories whose whole content is credentials."""

SECRET_FILE_GLOBS = tuple(
    ".env* *.pem *.key *.p12 *.pfx id_* credentials credentials.json .netrc .npmrc .pypirc "
    ".pgpass .htpasswd .git-credentials".split()
)
"""Final path components that commonly hold keys or passwords (matched case-insensitively)."""

SKIPPED_DIR_NAMES = frozenset({".git"})
"""Directories `list_dir` and `search` never enter."""

NOT_EXPANDED_DIR_NAMES = frozenset(
    "node_modules .venv venv __pycache__ .mypy_cache .pytest_cache .ruff_cache .tox".split()
)
"""Vendored or generated directories: listed, but not walked into by `list_dir` or `search`."""

_RG_FLAGS = (
    "--no-config --line-number --no-heading --with-filename --null --color=never --hidden"
).split()


class WorkspaceError(ValueError):
    """A path a ghost may not touch; the message is safe to show the model."""


def is_secret_name(name: str) -> bool:
    """True for a file name that looks like a credential; public keys (`id_*.pub`) are fine."""
    lowered = name.lower()
    if lowered.startswith("id_") and lowered.endswith(".pub"):
        return False
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SECRET_FILE_GLOBS)


def is_secret_path(path: PurePath) -> bool:
    """True when the last component is a secret name or any component is a secret directory."""
    parts = [part.lower() for part in path.parts]
    if any(part in SECRET_DIR_NAMES for part in parts):
        return True
    return bool(parts) and is_secret_name(parts[-1])


def is_hidden_name(name: str, is_dir: bool) -> bool:
    """True for entries that listings and searches skip without saying so."""
    if is_dir:
        return name in SKIPPED_DIR_NAMES or name.lower() in SECRET_DIR_NAMES
    return is_secret_name(name)


def resolve_in_workspace(workspace: Path, raw: object, *, allow_secret: bool = False) -> Path:
    """Resolve a model-supplied path to a real path inside `workspace`, or raise WorkspaceError.

    `allow_secret` is for callers that only show names (a `find` or `ls` argument), never content.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise WorkspaceError("path must be a non-empty string")
    if "\x00" in raw:
        raise WorkspaceError("path contains a NUL byte")
    requested = Path(raw)
    candidate = requested if requested.is_absolute() else workspace / requested
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on Python 3.11
        raise WorkspaceError(f"cannot resolve path {raw!r}: {exc}") from None
    if not resolved.is_relative_to(workspace):
        raise WorkspaceError(f"path escapes the workspace: {raw!r}")
    if allow_secret:
        return resolved
    if is_secret_path(resolved.relative_to(workspace)) or is_secret_name(requested.name):
        raise WorkspaceError(f"{raw!r} looks like a secrets file")
    return resolved


def display_path(workspace: Path, path: Path) -> str:
    """The workspace-relative form shown to the model (`.` for the root)."""
    relative = path.relative_to(workspace)
    return relative.as_posix() if relative.parts else "."


def find_secret_entries(workspace: Path, max_depth: int = 2, limit: int = 200) -> list[Path]:
    """Secret files and directories near the workspace root, for the jail to mask."""
    found: list[Path] = []
    pending = [(workspace, 1)]
    while pending and len(found) < limit:
        directory, depth = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            is_dir = entry.is_dir()
            name = entry.name
            if (is_dir and name.lower() in SECRET_DIR_NAMES) or (
                not is_dir and is_secret_name(name)
            ):
                found.append(Path(entry.path))
            elif (
                is_dir
                and depth < max_depth
                and name not in NOT_EXPANDED_DIR_NAMES | SKIPPED_DIR_NAMES
            ):
                pending.append((Path(entry.path), depth + 1))
    return found[:limit]


def is_visible(relative: PurePath) -> bool:
    """False for what listings and searches must not show: secrets and anything under .git."""
    return not is_secret_path(relative) and not SKIPPED_DIR_NAMES.intersection(relative.parts)


def visible_tree(root: Path, depth: int, max_entries: int) -> list[str]:
    """An indented listing of `root`: dirs end with '/', symlinks with '@' and are not followed."""
    lines: list[str] = []

    def walk(directory: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: (not e.is_dir(), e.name.lower()))
        except OSError as exc:
            lines.append(f"{'  ' * level}[unreadable: {exc.strerror}]")
            return
        for entry in entries:
            if len(lines) >= max_entries:
                return
            is_dir = entry.is_dir()
            if is_hidden_name(entry.name, is_dir):
                continue
            indent = "  " * level
            if entry.is_symlink():
                lines.append(f"{indent}{entry.name}@")
            elif is_dir and entry.name in NOT_EXPANDED_DIR_NAMES:
                lines.append(f"{indent}{entry.name}/ (not expanded)")
            elif is_dir:
                lines.append(f"{indent}{entry.name}/")
                if level + 1 < depth:
                    walk(Path(entry.path), level + 1)
            else:
                lines.append(f"{indent}{entry.name}")

    walk(root, 0)
    return lines


def visible_files(start: Path) -> Iterator[Path]:
    """Files a search may read under `start`: no secrets, .git, vendored dirs or symlinks."""
    if start.is_file():
        yield start
        return
    for directory, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(
            name
            for name in dirnames
            if not is_hidden_name(name, True) and name not in NOT_EXPANDED_DIR_NAMES
        )
        for name in sorted(filenames):
            path = Path(directory, name)
            if not is_hidden_name(name, False) and not path.is_symlink():
                yield path


class SearchError(ValueError):
    """An invalid pattern (or a ripgrep failure); the message says what the model got wrong."""


def _ripgrep() -> str | None:
    return shutil.which("rg")


async def search_workspace(
    workspace: Path, start: Path, pattern: str, glob: str | None, max_hits: int, timeout_s: float
) -> list[tuple[str, int, str]]:
    """(path, line number, line) matches in visible files: ripgrep if installed, else Python."""
    rg = _ripgrep()
    if rg is not None:
        return await _search_with_ripgrep(rg, workspace, start, pattern, glob, max_hits)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise SearchError(f"invalid regex: {exc}") from None
    deadline = time.monotonic() + timeout_s
    return await asyncio.to_thread(grep_files, workspace, start, regex, glob, max_hits, deadline)


async def _search_with_ripgrep(
    rg: str, workspace: Path, start: Path, pattern: str, glob: str | None, max_hits: int
) -> list[tuple[str, int, str]]:
    """Ripgrep with the same exclusions; it is killed once `max_hits` is reached."""
    excluded = [*SKIPPED_DIR_NAMES, *NOT_EXPANDED_DIR_NAMES, *SECRET_DIR_NAMES, *SECRET_FILE_GLOBS]
    argv = [rg, *_RG_FLAGS, *(["--glob", glob] if glob else [])]
    argv += [f"--iglob=!{name}" for name in excluded]  # after --glob, so these win
    argv += ["-e", pattern, "--", display_path(workspace, start)]
    pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    proc = await asyncio.create_subprocess_exec(*argv, cwd=workspace, limit=2**24, **pipes)
    hits: list[tuple[str, int, str]] = []
    messages: list[str] = []
    try:
        while len(hits) < max_hits and (raw := await proc.stdout.readline()):
            line = raw.decode("utf-8", "replace")
            rel, nul, rest = line.partition("\0")
            number, _, text = rest.partition(":")
            rel = rel.removeprefix("./")
            if not nul or not number.isdigit():
                messages.append(line.rstrip())
            elif is_visible(PurePath(rel)):
                hits.append((rel, int(number), text))
    finally:
        if proc.returncode is None:  # not proc.kill(): its poll() races asyncio's child watcher
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        await proc.communicate()
    if proc.returncode == 2 and not hits:  # e.g. a regex parse error
        raise SearchError("\n".join(messages[:20]) or "ripgrep failed")
    return hits


def grep_files(
    workspace: Path,
    start: Path,
    regex: re.Pattern[str],
    glob: str | None,
    max_hits: int,
    deadline: float,
) -> list[tuple[str, int, str]]:
    """(path, line number, line) matches in visible text files: search without ripgrep."""
    hits: list[tuple[str, int, str]] = []
    for path in visible_files(start):
        rel = path.relative_to(workspace).as_posix()
        if glob and not fnmatch.fnmatch(rel if "/" in glob else path.name, glob):
            continue
        if time.monotonic() > deadline:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if looks_binary(data):
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if regex.search(line):
                hits.append((rel, number, line))
                if len(hits) >= max_hits:
                    return hits
    return hits


def looks_binary(data: bytes) -> bool:
    """A NUL byte early on means binary, as git and ripgrep decide."""
    return b"\x00" in data[:8192]


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
