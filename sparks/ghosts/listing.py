"""Confined directory walks for `list_dir` and the Python `search`: descriptors, never paths.

Each directory is opened from its parent's descriptor with O_NOFOLLOW, so a symlink (or a
directory swapped for one mid-walk) is shown or skipped, never entered. Secrets and `.git`
are skipped silently; the walk stops at its entry limit or deadline.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import PurePath

from sparks.ghosts.secrets import is_hidden
from sparks.ghosts.workspace import DIR_FLAGS, READ_FLAGS

NOT_EXPANDED_DIR_NAMES = frozenset(
    "node_modules .venv venv __pycache__ .mypy_cache .pytest_cache .ruff_cache .tox".split()
)
"""Vendored or generated directories: listed, but not walked into by `list_dir` or `search`."""


def _entries(dir_fd: int) -> list[tuple[str, bool, bool]]:
    """(name, is_dir, is_symlink) sorted dirs first, then by name; nothing followed."""
    with os.scandir(dir_fd) as scan:
        found = [(e.name, e.is_dir(follow_symlinks=False), e.is_symlink()) for e in scan]
    return sorted(found, key=lambda e: (not e[1], e[0].lower()))


@contextlib.contextmanager
def _child(dir_fd: int, name: str) -> Iterator[int | None]:
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def visible_tree(
    dir_fd: int, base: PurePath, depth: int, max_entries: int, deadline: float
) -> list[str]:
    """An indented listing: dirs end with '/', symlinks with '@' and are not followed."""
    lines: list[str] = []

    def walk(fd: int, rel: PurePath, level: int) -> None:
        indent = "  " * level
        try:
            entries = _entries(fd)
        except OSError as exc:
            lines.append(f"{indent}[unreadable: {exc.strerror}]")
            return
        for name, is_dir, is_link in entries:
            if len(lines) >= max_entries or time.monotonic() > deadline:
                return
            if is_hidden(rel / name, is_dir):
                continue
            if is_link:
                lines.append(f"{indent}{name}@")
            elif is_dir and name in NOT_EXPANDED_DIR_NAMES:
                lines.append(f"{indent}{name}/ (not expanded)")
            elif is_dir:
                lines.append(f"{indent}{name}/")
                if level + 1 < depth:
                    with _child(fd, name) as child:
                        if child is not None:
                            walk(child, rel / name, level + 1)
            else:
                lines.append(f"{indent}{name}")

    walk(dir_fd, base, 0)
    return lines


def visible_files(dir_fd: int, base: PurePath, deadline: float) -> Iterator[tuple[int, PurePath]]:
    """(fd, relative path) of each regular, visible, singly linked file under the directory,
    opened without following links or blocking; the fd is closed when the caller moves on."""
    try:
        entries = _entries(dir_fd)
    except OSError:
        return
    for name, is_dir, is_link in entries:
        if time.monotonic() > deadline:
            return
        rel = base / name
        if is_link or is_hidden(rel, is_dir):
            continue
        if is_dir:
            if name in NOT_EXPANDED_DIR_NAMES:
                continue
            with _child(dir_fd, name) as child:
                if child is not None:
                    yield from visible_files(child, rel, deadline)
            continue
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                yield fd, rel
        finally:
            os.close(fd)
