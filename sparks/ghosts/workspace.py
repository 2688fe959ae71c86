"""Confined opens: every file tool reaches the workspace only through `resolve_beneath`.

The path a model names is normalised lexically (`..` may not climb above the workspace), then
walked one component at a time from a descriptor of the workspace with
`os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=parent)`. Each step is one `openat`, so there
is no window between checking a path and opening it: a directory swapped for a symlink halfway
through makes that `openat` fail instead of leaving the workspace. A symlink met on the way is
read with `readlinkat` and followed only if its target, taken lexically, stays inside; the walk
then restarts from the workspace descriptor with the new path (at most 40 times). The same
secret and `.git` rules apply to the requested path and to the path actually reached.

This is what `openat2(RESOLVE_BENEATH)` does in the kernel; the component walk is used because
it is portable (macOS has no openat2) and needs no ctypes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TypeVar

from sparks.ghosts.secrets import is_history_path, is_secret_path

MAX_LINK_HOPS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""O_NONBLOCK: opening a FIFO returns at once (then fstat refuses it) instead of hanging."""

T = TypeVar("T")


class WorkspaceError(ValueError):
    """A path a ghost may not touch; the message is safe to show the model."""


class _Redirect(Exception):
    """The final component is a symlink; `target` is what it points to."""

    def __init__(self, target: str) -> None:
        self.target = target


@dataclass(frozen=True)
class Reached:
    """Where a walk ended: the parent directory's fd (owned by the walk) and the final name."""

    dir_fd: int
    name: str  # "" when the path is the workspace itself
    parts: tuple[str, ...]  # the real workspace-relative path, after followed links


def requested_parts(workspace: Path, raw: object) -> tuple[str, ...]:
    """The workspace-relative components a model-supplied path names, or WorkspaceError."""
    if not isinstance(raw, str) or not raw.strip():
        raise WorkspaceError("path must be a non-empty string")
    if "\x00" in raw:
        raise WorkspaceError("path contains a NUL byte")
    parts = _normalise(workspace, raw)
    if parts is None:
        raise WorkspaceError(f"path escapes the workspace: {raw!r}")
    return parts


def _normalise(workspace: Path, raw: str, base: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Lexical normalisation beneath the workspace; None when the path leaves it."""
    if raw.startswith("/"):
        root = str(workspace)
        norm = posixpath.normpath(raw)
        if norm == root:
            return ()
        if not norm.startswith(root.rstrip("/") + "/"):
            return None
        rel = norm[len(root.rstrip("/")) + 1 :]
    else:
        rel = posixpath.normpath(posixpath.join(*base, raw) if base else raw)
    if rel == ".":
        return ()
    if rel == ".." or rel.startswith("../"):
        return None
    return tuple(part for part in rel.split("/") if part and part != ".")


def display(parts: tuple[str, ...]) -> str:
    """The workspace-relative form shown to the model (`.` for the root)."""
    return "/".join(parts) or "."


def check_visible(parts: tuple[str, ...], raw: str) -> None:
    """Refuse secret-looking paths and anything under `.git`."""
    path = PurePath(*parts)
    if is_secret_path(path):
        raise WorkspaceError(f"{raw!r} looks like a secrets file; ghosts cannot open it")
    if is_history_path(path):
        raise WorkspaceError(f"{raw!r} is inside .git, which ghosts cannot open")


def resolve_beneath(
    workspace: Path,
    raw: object,
    final: Callable[[Reached], T],
    *,
    create_dirs: bool = False,
) -> T:
    """Walk to `raw`'s parent beneath the workspace and call `final` on it, following only
    symlinks that stay inside. `final` raises `_Redirect` (via `open_final`/`lstat_final`)
    when the last component is a symlink; the walk then restarts with its target."""
    parts = requested_parts(workspace, raw)
    shown = display(parts)
    check_visible(parts, shown)
    for _ in range(MAX_LINK_HOPS):
        try:
            with _walk_parent(workspace, parts, shown, create_dirs) as reached:
                check_visible(reached.parts, shown)
                return final(reached)
        except _Redirect as link:
            parts = _follow(workspace, parts[:-1], link.target, (), shown)
        except _MidLink as link:
            parts = _follow(workspace, link.base, link.target, link.rest, shown)
    raise WorkspaceError(f"too many levels of symbolic links: {shown!r}")


class _MidLink(Exception):
    def __init__(self, base: tuple[str, ...], target: str, rest: tuple[str, ...]) -> None:
        self.base, self.target, self.rest = base, target, rest


def _follow(
    workspace: Path, base: tuple[str, ...], target: str, rest: tuple[str, ...], shown: str
) -> tuple[str, ...]:
    parts = _normalise(workspace, target, base)
    if parts is None:
        raise WorkspaceError(f"path escapes the workspace through a symlink: {shown!r}")
    return parts + rest


@contextlib.contextmanager
def _walk_parent(
    workspace: Path, parts: tuple[str, ...], shown: str, create_dirs: bool
) -> Iterator[Reached]:
    fd = os.open(workspace, DIR_FLAGS)
    try:
        if not parts:
            yield Reached(fd, "", ())
            return
        for index, name in enumerate(parts[:-1]):
            child = _open_dir_step(fd, name, create_dirs, parts, index, shown)
            os.close(fd)
            fd = child
        yield Reached(fd, parts[-1], parts)
    finally:
        os.close(fd)


def _open_dir_step(
    fd: int, name: str, create: bool, parts: tuple[str, ...], index: int, shown: str
) -> int:
    for _ in range(MAX_LINK_HOPS):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), shown) from None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            try:
                target = os.readlink(name, dir_fd=fd)
            except OSError as again:
                if again.errno == errno.EINVAL and exc.errno == errno.ELOOP:
                    continue  # swapped back to a directory meanwhile: try again
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown) from None
            raise _MidLink(parts[:index], target, parts[index + 1 :]) from None
    raise WorkspaceError(f"{shown!r} keeps changing; try again")


def open_final(reached: Reached, flags: int) -> int:
    """Open the final component with O_NOFOLLOW; a symlink there becomes a redirect."""
    if not reached.name:
        return os.dup(reached.dir_fd)  # the workspace itself
    try:
        return os.open(reached.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=reached.dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
            raise _named(exc, reached) from None
        try:
            target = os.readlink(reached.name, dir_fd=reached.dir_fd)
        except OSError:
            raise _named(exc, reached) from None
        raise _Redirect(target) from None


def lstat_final(reached: Reached) -> os.stat_result | None:
    """The final component's lstat (None if absent); a symlink there becomes a redirect."""
    if not reached.name:
        return os.fstat(reached.dir_fd)
    try:
        info = os.stat(reached.name, dir_fd=reached.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise _Redirect(os.readlink(reached.name, dir_fd=reached.dir_fd))
    return info


def _named(exc: OSError, reached: Reached) -> OSError:
    return type(exc)(exc.errno, exc.strerror, display(reached.parts))


def open_entry(
    workspace: Path, raw: object, *, allow_dir: bool = False
) -> tuple[int, tuple[str, ...], bool]:
    """(fd, real relative path, is_dir) of a regular file, or of a directory if `allow_dir`,
    beneath the workspace. FIFOs, devices, sockets and hard-linked files are refused (opened
    non-blocking, then fstat). The caller closes the fd."""

    def final(reached: Reached) -> tuple[int, tuple[str, ...], bool]:
        fd = open_final(reached, READ_FLAGS)
        try:
            info = os.fstat(fd)
            shown = display(reached.parts)
            if stat.S_ISDIR(info.st_mode):
                if allow_dir:
                    return fd, reached.parts, True
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
            if not stat.S_ISREG(info.st_mode):
                raise WorkspaceError(f"{shown!r} is not a regular file (pipe, device or socket)")
            if info.st_nlink > 1:
                raise WorkspaceError(
                    f"{shown!r} has other hard links; ghost tools do not read hard-linked files"
                )
        except BaseException:
            os.close(fd)
            raise
        return fd, reached.parts, False

    return resolve_beneath(workspace, raw, final)


def open_regular(workspace: Path, raw: object) -> tuple[int, tuple[str, ...]]:
    """An fd of a regular file beneath the workspace (see `open_entry`) and its real path."""
    fd, parts, _ = open_entry(workspace, raw)
    return fd, parts


def open_directory(workspace: Path, raw: object) -> tuple[int, tuple[str, ...]]:
    """An fd of a directory beneath the workspace and its real relative path."""

    def final(reached: Reached) -> tuple[int, tuple[str, ...]]:
        return open_final(reached, DIR_FLAGS), reached.parts

    return resolve_beneath(workspace, raw, final)


def read_capped(fd: int, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes from `fd`, and whether more were there; never allocates beyond it."""
    chunks, size = [], 0
    while size <= cap:
        chunk = os.read(fd, min(1 << 20, cap + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return data[:cap], len(data) > cap


def write_beneath(workspace: Path, raw: object, data: bytes) -> tuple[bool, tuple[str, ...]]:
    """Create or replace a file beneath the workspace: a temp file in the confined parent
    directory, then a rename there (a symlink planted at the name is replaced, never
    followed out). Returns (existed before, real relative path)."""

    def final(reached: Reached) -> tuple[bool, tuple[str, ...]]:
        shown = display(reached.parts)
        if not reached.name:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
        info = lstat_final(reached)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise WorkspaceError(f"{shown!r} is not a regular file (pipe, device or socket)")
        mode = stat.S_IMODE(info.st_mode) if info is not None else 0o644
        _replace(reached.dir_fd, reached.name, data, mode)
        return info is not None, reached.parts

    return resolve_beneath(workspace, raw, final, create_dirs=True)


def _replace(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    temp = f".{name[:100]}.{os.urandom(6).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def looks_binary(data: bytes) -> bool:
    """A NUL byte early on means binary, as git and ripgrep decide."""
    return b"\x00" in data[:8192]
