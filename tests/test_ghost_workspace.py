"""Path confinement and secret-file rules for ghost tools (no subprocesses, no I/O beyond tmp)."""

from __future__ import annotations

import re
import time
from pathlib import Path, PurePath

import pytest

from sparks.ghosts.workspace import (
    WorkspaceError,
    display_path,
    find_secret_entries,
    grep_files,
    is_secret_name,
    is_secret_path,
    resolve_in_workspace,
    visible_tree,
    write_atomic,
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


@pytest.mark.parametrize(
    "name",
    [".env", ".env.local", ".ENV", "server.pem", "tls.key", "id_rsa", "id_ed25519", "id_ecdsa",
     "credentials", "credentials.json", ".netrc", ".npmrc", ".pypirc", "cert.p12", "cert.pfx",
     ".git-credentials"],
)  # fmt: skip
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["app.py", "README.md", "id_rsa.pub", "environment.py", "keys.txt"]
)
def test_ordinary_names_and_public_keys_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_anything_under_ssh_aws_gnupg_is_secret() -> None:
    assert is_secret_path(PurePath(".ssh/config"))
    assert is_secret_path(PurePath("home/.aws/config"))
    assert is_secret_path(PurePath(".gnupg/pubring.kbx"))
    assert not is_secret_path(PurePath("docs/ssh.md"))


def test_relative_and_absolute_paths_inside_resolve(ws: Path) -> None:
    assert resolve_in_workspace(ws, "src/app.py") == ws / "src" / "app.py"
    assert resolve_in_workspace(ws, str(ws / "src" / "app.py")) == ws / "src" / "app.py"
    assert resolve_in_workspace(ws, "src/../src/new.py") == ws / "src" / "new.py"
    assert display_path(ws, resolve_in_workspace(ws, ".")) == "."


@pytest.mark.parametrize("raw", ["../outside/secret.txt", "/etc/passwd", "src/../../outside", ""])
def test_paths_leaving_the_workspace_are_refused(ws: Path, raw: str) -> None:
    with pytest.raises(WorkspaceError):
        resolve_in_workspace(ws, raw)


def test_symlink_to_outside_file_is_refused(ws: Path) -> None:
    (ws / "innocent.txt").symlink_to(ws.parent / "outside" / "secret.txt")
    with pytest.raises(WorkspaceError, match="escapes"):
        resolve_in_workspace(ws, "innocent.txt")


def test_symlinked_dir_in_the_middle_is_refused(ws: Path) -> None:
    (ws / "src" / "vendor").symlink_to(ws.parent / "outside", target_is_directory=True)
    with pytest.raises(WorkspaceError, match="escapes"):
        resolve_in_workspace(ws, "src/vendor/secret.txt")
    with pytest.raises(WorkspaceError, match="escapes"):
        resolve_in_workspace(ws, "src/vendor/not-yet-created.txt")


def test_symlink_inside_to_a_secret_is_refused(ws: Path) -> None:
    (ws / ".env").write_text("KEY=1\n")
    (ws / "notes.txt").symlink_to(ws / ".env")
    with pytest.raises(WorkspaceError, match="secrets"):
        resolve_in_workspace(ws, "notes.txt")


def test_symlink_loop_is_refused_not_raised_as_runtime_error(ws: Path) -> None:
    (ws / "loop").symlink_to(ws / "loop")
    with pytest.raises(WorkspaceError):
        resolve_in_workspace(ws, "loop/x")


def test_secret_names_only_allowed_when_asked(ws: Path) -> None:
    with pytest.raises(WorkspaceError, match="secrets"):
        resolve_in_workspace(ws, ".ssh/config")
    assert resolve_in_workspace(ws, ".env", allow_secret=True) == ws / ".env"


def test_visible_tree_hides_secrets_git_and_does_not_follow_symlinks(ws: Path) -> None:
    (ws / ".env").write_text("KEY=1\n")
    (ws / ".git").mkdir()
    (ws / ".ssh").mkdir()
    (ws / "node_modules" / "pkg").mkdir(parents=True)
    (ws / "out").symlink_to(ws.parent / "outside", target_is_directory=True)
    lines = visible_tree(ws, depth=3, max_entries=100)
    assert lines == ["node_modules/ (not expanded)", "out@", "src/", "  app.py"]


def test_visible_tree_stops_at_max_entries(ws: Path) -> None:
    for index in range(20):
        (ws / f"f{index:02}.txt").write_text("")
    assert len(visible_tree(ws, depth=1, max_entries=5)) == 5


def test_grep_files_skips_secret_files(ws: Path) -> None:
    (ws / ".env").write_text("OPENAI_API_KEY=sk-live\n")
    (ws / "src" / "config.py").write_text("API_KEY = os.environ['OPENAI_API_KEY']\n")
    hits = grep_files(ws, ws, re.compile("API_KEY"), None, 100, time.monotonic() + 5)
    assert hits == [("src/config.py", 1, "API_KEY = os.environ['OPENAI_API_KEY']")]


def test_find_secret_entries_near_root(ws: Path) -> None:
    (ws / ".env").write_text("x")
    (ws / "deploy").mkdir()
    (ws / "deploy" / "server.key").write_text("x")
    (ws / ".aws").mkdir()
    assert sorted(find_secret_entries(ws)) == [ws / ".aws", ws / ".env", ws / "deploy/server.key"]


def test_write_atomic_keeps_mode_and_leaves_no_temp_files(ws: Path) -> None:
    target = ws / "run.sh"
    target.write_text("old")
    target.chmod(0o755)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in ws.iterdir()) == ["run.sh", "src"]
