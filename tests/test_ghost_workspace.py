"""Confined opens and the secret rules (no subprocesses, no I/O beyond tmp)."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePath

import pytest

from sparks.ghosts import secrets
from sparks.ghosts.secrets import MaskScanError, is_secret_name, is_secret_path, scan_masks
from sparks.ghosts.workspace import (
    WorkspaceError,
    open_regular,
    read_capped,
    requested_parts,
    write_beneath,
)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    return root


def read(ws: Path, raw: str) -> bytes:
    fd, _ = open_regular(ws, raw)
    try:
        return read_capped(fd, 1 << 20)[0]
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "name",
    [".env", ".env.local", ".ENV", "prod.env", "server.pem", "tls.key", "api_key",
     "ssh_host_ed25519_key", "id_rsa", "id_ed25519", "deploy_rsa", "credentials",
     "credentials.json", ".netrc", "_netrc", ".npmrc", ".pypirc", "cert.p12", "cert.pfx",
     ".git-credentials", "client_keys.json"],
)  # fmt: skip
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["app.py", "README.md", "id_rsa.pub", "ssh_host_rsa_key.pub", "environment.py"]
)
def test_ordinary_names_and_public_keys_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_dirs_and_docker_config_are_secret_paths() -> None:
    assert is_secret_path(PurePath(".ssh/config"))
    assert is_secret_path(PurePath("home/.aws/config"))
    assert is_secret_path(PurePath(".docker/config.json"))
    assert not is_secret_path(PurePath("docs/config.json"))


def test_relative_and_absolute_paths_inside_are_accepted(ws: Path) -> None:
    assert requested_parts(ws, "src/app.py") == ("src", "app.py")
    assert requested_parts(ws, str(ws / "src" / "app.py")) == ("src", "app.py")
    assert requested_parts(ws, "src/../src/new.py") == ("src", "new.py")
    assert requested_parts(ws, ".") == ()


@pytest.mark.parametrize("raw", ["../outside/secret.txt", "/etc/passwd", "src/../../outside", ""])
def test_paths_leaving_the_workspace_are_refused(ws: Path, raw: str) -> None:
    with pytest.raises(WorkspaceError):
        requested_parts(ws, raw)


def test_symlink_to_outside_file_is_refused(ws: Path) -> None:
    (ws / "innocent.txt").symlink_to(ws.parent / "outside" / "secret.txt")
    with pytest.raises(WorkspaceError, match="escapes"):
        read(ws, "innocent.txt")


def test_symlinked_dir_in_the_middle_is_refused_for_reads_and_writes(ws: Path) -> None:
    (ws / "src" / "vendor").symlink_to(ws.parent / "outside", target_is_directory=True)
    with pytest.raises(WorkspaceError, match="escapes"):
        read(ws, "src/vendor/secret.txt")
    with pytest.raises(WorkspaceError, match="escapes"):
        write_beneath(ws, "src/vendor/planted.txt", b"x")
    assert sorted(p.name for p in (ws.parent / "outside").iterdir()) == ["secret.txt"]


def test_symlink_inside_the_workspace_is_followed(ws: Path) -> None:
    (ws / "main.py").symlink_to("src/app.py")
    (ws / "code").symlink_to("src", target_is_directory=True)
    assert read(ws, "main.py") == b"print('hi')\n"
    assert read(ws, "code/app.py") == b"print('hi')\n"


def test_symlink_inside_to_a_secret_is_refused(ws: Path) -> None:
    (ws / ".env").write_text("KEY=1\n")
    (ws / "notes.txt").symlink_to(ws / ".env")
    with pytest.raises(WorkspaceError, match="secrets"):
        read(ws, "notes.txt")


def test_symlink_loop_is_refused(ws: Path) -> None:
    (ws / "loop").symlink_to(ws / "loop")
    with pytest.raises(WorkspaceError, match="symbolic links"):
        read(ws, "loop/x")


def test_git_directory_is_refused(ws: Path) -> None:
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n")
    with pytest.raises(WorkspaceError, match=r"\.git"):
        read(ws, ".git/config")
    with pytest.raises(WorkspaceError, match=r"\.git"):
        write_beneath(ws, ".git/hooks/pre-commit", b"#!/bin/sh\n")


def test_fifo_and_hard_links_are_refused_without_blocking(ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    os.link(ws / "src" / "app.py", ws / "twin.py")
    started = time.monotonic()
    with pytest.raises(WorkspaceError, match="not a regular file"):
        read(ws, "pipe")
    with pytest.raises(WorkspaceError, match="hard links"):
        read(ws, "twin.py")
    assert time.monotonic() - started < 1


def test_read_capped_never_reads_past_the_cap(ws: Path) -> None:
    with open(ws / "big.txt", "wb") as handle:
        handle.truncate(1 << 30)
    fd, _ = open_regular(ws, "big.txt")
    try:
        data, truncated = read_capped(fd, 1000)
    finally:
        os.close(fd)
    assert len(data) == 1000 and truncated


def test_write_keeps_mode_leaves_no_temp_files_and_replaces_a_planted_symlink(ws: Path) -> None:
    target = ws / "run.sh"
    target.write_text("old")
    target.chmod(0o755)
    assert write_beneath(ws, "run.sh", b"new") == (True, ("run.sh",))
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o755
    (ws / "src" / "out.txt").symlink_to(ws / "run.sh")
    write_beneath(ws, "src/out.txt", b"via link")
    assert target.read_bytes() == b"via link"  # an inside link is followed to its target
    assert sorted(p.name for p in ws.iterdir()) == ["run.sh", "src"]


def test_scan_masks_finds_secrets_at_any_depth_git_and_hard_links(ws: Path) -> None:
    deep = ws / "a" / "b" / "c" / "node_modules" / "pkg"
    deep.mkdir(parents=True)
    (deep / "prod.env").write_text("x")
    (ws / ".env").write_text("x")
    (ws / ".git").mkdir()
    (ws / ".aws").mkdir()
    os.link(ws / ".env", ws / "innocent.txt")
    (ws / "link.env").symlink_to(ws.parent / "outside" / "secret.txt")
    masks = scan_masks(ws, time.monotonic() + 5)
    assert sorted(masks.files) == sorted(
        PurePath(p) for p in [".env", "a/b/c/node_modules/pkg/prod.env", "innocent.txt"]
    )
    assert sorted(masks.dirs) == [PurePath(".aws"), PurePath(".git")]


def test_scan_masks_hides_unreadable_dirs_and_fails_closed(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that cannot be listed is hidden whole; an unlistable root is an error."""
    real_list = secrets._list
    unreadable: set[int] = set()

    def flaky(dir_fd: int) -> list[tuple[str, int, int]]:
        if os.fstat(dir_fd).st_ino in unreadable:
            raise PermissionError(13, "Permission denied")
        return real_list(dir_fd)

    monkeypatch.setattr(secrets, "_list", flaky)
    unreadable.add((ws / "src").stat().st_ino)
    assert scan_masks(ws, time.monotonic() + 5).dirs == [PurePath("src")]
    unreadable.add(ws.stat().st_ino)
    with pytest.raises(MaskScanError, match="cannot list"):
        scan_masks(ws, time.monotonic() + 5)


def test_scan_masks_refuses_an_incomplete_walk(ws: Path) -> None:
    for index in range(20):
        (ws / f"f{index}.txt").write_text("")
    with pytest.raises(MaskScanError, match="too many entries"):
        scan_masks(ws, time.monotonic() + 5, max_entries=10)
