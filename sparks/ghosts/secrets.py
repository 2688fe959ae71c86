"""The one rule set for what a ghost must never read, and the walk that finds it for the jail.

Every tool uses these rules: the file tools refuse such paths, listings and searches skip them,
and the bwrap jail hides each match (at any depth) so no program (git, grep, rg, wc, ...)
can read it either. `.git` is hidden too: its objects hold every secret file ever committed
or staged, and its config and hooks run programs on the user's machine.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath

SECRET_DIR_NAMES = frozenset({".ssh", ".aws", ".gnupg", ".password-store"})
"""Directories whose whole content is credentials."""

HISTORY_DIR_NAMES = frozenset({".git"})
"""Repository internals: committed or staged secrets live on in their objects."""

SECRET_FILE_GLOBS = tuple(
    """.env* *.env *.pem *.key *_key id_* *_rsa *_dsa *_ecdsa *_ed25519 .netrc _netrc
    credentials* .npmrc .pypirc .pgpass .htpasswd .git-credentials *.p12 *.pfx *.ppk *.jks
    *.keystore *.kdbx .vault-token .s3cfg .boto client_keys.json""".split()
)
"""Final path components that commonly hold keys or passwords (matched case-insensitively).
`*_key` covers `ssh_host_ed25519_key` and Sparks' own `api_key`."""

SECRET_FILES_IN_DIRS = frozenset({(".docker", "config.json"), (".kube", "config")})
"""(parent, name) pairs that hold credentials although the name alone is ordinary."""

PUBLIC_KEY_SUFFIX = ".pub"

MAX_SCAN_ENTRIES = 300_000
MAX_SCAN_DEPTH = 64


def is_secret_name(name: str) -> bool:
    """True for a file name that looks like a credential; public keys (`id_*.pub`) are fine."""
    lowered = name.lower()
    if lowered.endswith(PUBLIC_KEY_SUFFIX) and not lowered.startswith((".env", "credentials")):
        return False
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SECRET_FILE_GLOBS)


def is_secret_path(path: PurePath) -> bool:
    """True when the last component is a secret name, or the path is inside a secret directory."""
    parts = [part.lower() for part in path.parts]
    if not parts:
        return False
    if any(part in SECRET_DIR_NAMES for part in parts):
        return True
    if len(parts) >= 2 and (parts[-2], parts[-1]) in SECRET_FILES_IN_DIRS:
        return True
    return is_secret_name(parts[-1])


def is_history_path(path: PurePath) -> bool:
    """True for anything in or under a `.git` directory."""
    return any(part in HISTORY_DIR_NAMES for part in path.parts)


def is_hidden(path: PurePath, is_dir: bool) -> bool:
    """What listings, searches and the jail hide: secrets, secret directories and `.git`."""
    if is_history_path(path):
        return True
    if is_dir:
        return path.name.lower() in SECRET_DIR_NAMES
    return is_secret_path(path)


class MaskScanError(RuntimeError):
    """The workspace could not be scanned completely, so the jail would not hide everything."""


@dataclass
class Masks:
    """Workspace-relative paths the jail covers: files with an empty file, dirs with an empty dir."""

    files: list[PurePath] = field(default_factory=list)
    dirs: list[PurePath] = field(default_factory=list)


def scan_masks(workspace: Path, deadline: float, max_entries: int = MAX_SCAN_ENTRIES) -> Masks:
    """Walk the whole workspace (no symlinks followed) and collect what the jail must hide.

    Fails closed: a directory that cannot be listed is hidden whole (it might hold a `.env`
    that a later `chmod` would expose); an unreadable workspace root or an incomplete walk (too
    many entries, too slow) raises MaskScanError. Hard links to a secret file are hidden too.
    """
    masks = Masks()
    secret_inodes: set[int] = set()
    regular: list[tuple[int, PurePath]] = []
    try:
        root_fd = os.open(workspace, _DIR_FLAGS)
    except OSError as exc:
        raise MaskScanError(f"cannot open the workspace: {exc.strerror}") from None
    pending: list[tuple[int, PurePath]] = [(root_fd, PurePath())]
    seen = 0
    try:
        while pending:
            dir_fd, rel = pending.pop()
            try:
                entries = _list(dir_fd)
            except OSError as exc:
                os.close(dir_fd)
                if not rel.parts:
                    raise MaskScanError(f"cannot list the workspace: {exc.strerror}") from None
                masks.dirs.append(rel)
                continue
            seen += len(entries)
            if seen > max_entries or time.monotonic() > deadline:
                os.close(dir_fd)
                raise MaskScanError(
                    "the workspace has too many entries to scan for secret files in time "
                    f"({seen} seen; limit {max_entries})"
                )
            for name, kind, inode in entries:
                path = rel / name
                if kind == stat.S_IFDIR:
                    if name in HISTORY_DIR_NAMES or name.lower() in SECRET_DIR_NAMES:
                        masks.dirs.append(path)
                    elif len(path.parts) < MAX_SCAN_DEPTH:
                        child = _open_child_dir(dir_fd, name)
                        if child is None:
                            masks.dirs.append(path)
                        else:
                            pending.append((child, path))
                elif kind == stat.S_IFREG:
                    if is_secret_path(path):
                        masks.files.append(path)
                        secret_inodes.add(inode)
                    else:
                        regular.append((inode, path))
            os.close(dir_fd)
    finally:
        for dir_fd, _ in pending:
            os.close(dir_fd)
    masks.files += [path for inode, path in regular if inode in secret_inodes]
    return masks


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _list(dir_fd: int) -> list[tuple[str, int, int]]:
    """(name, S_IFDIR / S_IFREG / 0 for anything else, inode) without following symlinks."""
    listed = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                kind = stat.S_IFDIR
            elif entry.is_file(follow_symlinks=False):
                kind = stat.S_IFREG
            else:
                kind = 0
            listed.append((entry.name, kind, entry.inode()))
    return listed


def _open_child_dir(dir_fd: int, name: str) -> int | None:
    """The child directory's fd, or None when it cannot be opened (it is then hidden whole)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
