"""The ghost `shell` tool: allowlisted env, timeouts, kill on cancel, and the bwrap jail."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sparks.ghosts import jail, shell
from sparks.ghosts.jail import SandboxUnavailable, sandbox_in_effect
from sparks.ghosts.tools import ToolContext, ToolResult, run_tool

from .conftest import skip_or_fail

_marker_numbers = itertools.count(1)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "a.txt").write_text("alpha\nbeta\n")
    (root / ".env").write_text("OPENAI_API_KEY=sk-live-from-dotenv\n")
    (tmp_path / "outside").mkdir()
    return root


def require_bwrap() -> None:
    """Skip a jailed test where bubblewrap cannot run, except under CI=true, where it fails."""
    problem = jail.bwrap_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the bubblewrap jail must work in CI: {problem}")
    skip_or_fail(problem)


@pytest.fixture
def bwrap_works() -> None:
    require_bwrap()


@pytest.fixture(params=["none", "bwrap"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Runs a test without a jail and inside one."""
    if request.param == "bwrap":
        require_bwrap()
    return request.param


def ctx_for(ws: Path, sandbox: str = "none", read_only: bool = False, **kw: object) -> ToolContext:
    return ToolContext(workspace=ws, read_only=read_only, sandbox=sandbox, **kw)  # type: ignore[arg-type]


async def sh(ctx: ToolContext, command: str, **extra: object) -> ToolResult:
    return await run_tool(ctx, "shell", json.dumps({"command": command, **extra}))


def unique_sleep() -> tuple[str, str]:
    """A `sleep` command whose argument marks its processes in /proc."""
    marker = f"30.{os.getpid()}{next(_marker_numbers):03d}"
    return f"sleep {marker}", marker


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def wait_until(predicate: object, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


async def test_env_is_built_from_the_allowlist_only(
    ws: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MYSQL_PWD", "mysql-secret")
    monkeypatch.setenv("HARMLESS_SETTING", "not passed either")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_TIME", "C")
    result = await sh(ctx_for(ws, sandbox), "env")
    assert result.ok, result.output
    names = sorted(line.split("=", 1)[0] for line in result.output.splitlines() if "=" in line)
    allowed = {"PATH", "HOME", "LANG", "LC_TIME", "TZ", "TMPDIR", "PWD", "SHLVL", "OLDPWD", "_"}
    assert set(names) - allowed <= set(shell.FIXED_ENV), names
    assert "LANG=C.UTF-8" in result.output and "mysql-secret" not in result.output
    if sandbox == "bwrap":
        assert f"HOME={jail.JAIL_HOME}" in result.output


async def test_exit_code_and_stderr_are_in_the_output(ws: Path) -> None:
    result = await sh(ctx_for(ws), "echo out; echo err >&2; exit 3")
    assert not result.ok
    assert result.output == "out\nerr\n[exit code 3]"
    assert result.summary == "exit code 3"


async def test_output_keeps_head_and_tail_with_truncation_marker(ws: Path) -> None:
    ctx = ctx_for(ws, max_output_bytes=1200)
    result = await sh(ctx, "echo FIRST; seq 1 20000; echo LAST")
    assert result.ok
    assert len(result.output.encode()) <= 1200
    assert result.output.startswith("FIRST\n") and result.output.endswith("LAST\n[exit code 0]")
    assert "[… truncated " in result.output


async def test_timeout_kills_the_command_and_reports_it(ws: Path) -> None:
    command, marker = unique_sleep()
    started = time.monotonic()
    result = await sh(ctx_for(ws), f"echo started; {command}", timeout_s=0.3)
    assert time.monotonic() - started < 2
    assert not result.ok
    assert result.output.startswith("started\n") and "timed out after 0.3s" in result.output
    assert not processes_with(marker)


async def test_timeout_is_capped_by_the_context(ws: Path) -> None:
    result = await sh(ctx_for(ws, timeout_s=0.3), "sleep 5", timeout_s=100)
    assert "timed out after 0.3s" in result.output


async def test_cancellation_kills_sleep_within_one_second(ws: Path, sandbox: str) -> None:
    command, marker = unique_sleep()
    task = asyncio.create_task(sh(ctx_for(ws, sandbox), command))
    assert await wait_until(lambda: processes_with(marker), 5), "sleep never started"
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until(lambda: not processes_with(marker), 1.0)
    assert time.monotonic() - cancelled_at < 1.0


async def test_background_jobs_do_not_outlive_the_call(ws: Path) -> None:
    command, marker = unique_sleep()
    result = await sh(ctx_for(ws), f"{command} & echo spawned")
    assert result.ok and result.output.startswith("spawned")
    assert await wait_until(lambda: not processes_with(marker), 1.0)


@pytest.mark.parametrize(
    "command",
    [
        "rm a.txt",
        "cat a.txt > b.txt",
        "tree -R -H . -o out.html",
        "uniq a.txt out.txt",
        "sort -o a.txt a.txt",
        "git init -q",
        "mkdir d",
        "touch $HOME/x /tmp/y; ls",
    ],
)
async def test_read_only_ghost_runs_anything_in_the_jail_but_changes_nothing(
    ws: Path, command: str, bwrap_works: None
) -> None:
    before = contents(ws)
    await sh(ctx_for(ws, "bwrap", read_only=True), command)
    assert contents(ws) == before


async def test_read_only_ghost_without_jail_gets_no_shell(ws: Path) -> None:
    result = await sh(ctx_for(ws, "none", read_only=True), "ls")
    assert not result.ok and result.output.startswith("refused: shell is not available")


@pytest.fixture
def git_repo(ws: Path) -> Path:
    """`ws` as a git repository with `a.txt` committed (`.env` left untracked)."""
    if shutil.which("git") is None:
        skip_or_fail("git is not installed")
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    identity |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    env = {**os.environ, **identity}
    for git_args in (["init", "-q"], ["add", "a.txt"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *git_args], cwd=ws, env=env, check=True, capture_output=True)
    return ws


async def test_git_history_is_hidden_in_the_jail(git_repo: Path, bwrap_works: None) -> None:
    ctx = ctx_for(git_repo, "bwrap", read_only=True)
    log = await sh(ctx, "git log --oneline; ls -A .git")
    assert "first" not in log.output and "not a git repository" in log.output.lower()


def test_bwrap_configured_but_missing_raises_sandbox_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    jail.bwrap_problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="not installed"):
            sandbox_in_effect("bwrap")
        assert sandbox_in_effect("auto") == "none"
        assert sandbox_in_effect("none") == "none"
    finally:
        jail.bwrap_problem.cache_clear()
    with pytest.raises(ValueError, match="auto, bwrap, none"):
        sandbox_in_effect("docker")


async def test_jail_unavailable_is_an_error_result(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell, "sandbox_in_effect", _raise_unavailable)
    result = await sh(ctx_for(ws, "bwrap"), "true")
    assert not result.ok and "bubblewrap" in result.output


def _raise_unavailable(sandbox: str) -> str:
    raise SandboxUnavailable("bubblewrap is not installed")


async def test_jail_keeps_system_read_only_and_outside_writes_invisible(
    ws: Path, tmp_path: Path, bwrap_works: None
) -> None:
    outside = tmp_path / "outside"
    result = await sh(
        ctx_for(ws, "bwrap"),
        f"touch /etc/sparks-jail-test; touch {outside}/planted; touch /tmp/scratch; "
        "echo inside > made-in-jail.txt",
    )
    assert "Read-only file system" in result.output
    assert "sparks-jail-test" not in names(Path("/etc"))
    assert not (outside / "planted").exists()
    assert (ws / "made-in-jail.txt").read_text() == "inside\n"


async def test_jail_has_no_network(ws: Path, bwrap_works: None) -> None:
    result = await sh(ctx_for(ws, "bwrap"), "cat /proc/net/dev")
    interfaces = [line.split(":")[0].strip() for line in result.output.splitlines() if ":" in line]
    assert interfaces == ["lo"], result.output


async def test_jail_hides_home_and_masks_dotenv(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bwrap_works: None
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine x password hunter2\n")
    monkeypatch.setenv("HOME", str(home))
    result = await sh(ctx_for(ws, "bwrap"), 'ls -A "$HOME"; cat .env; echo done')
    assert result.output == "cat: .env: Permission denied\ndone\n[exit code 0]", result.output


async def test_jail_makes_workspace_read_only_for_read_only_ghosts(
    ws: Path, bwrap_works: None
) -> None:
    result = await sh(ctx_for(ws, "bwrap", read_only=True), "echo x > a.txt; touch new")
    assert "Read-only file system" in result.output
    assert names(ws) == [".env", "a.txt"] and (ws / "a.txt").read_text() == "alpha\nbeta\n"


async def test_jail_sees_no_host_files_beyond_the_system(ws: Path, bwrap_works: None) -> None:
    result = await sh(ctx_for(ws, "bwrap"), "ls /etc; ls /root /home /opt /var 2>&1; echo end")
    assert "shadow" not in result.output and "gitconfig" not in result.output
    assert result.output.rstrip().endswith("end\n[exit code 0]".rstrip())


async def test_jail_limits_file_size(
    ws: Path, bwrap_works: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jail, "MAX_FILE_BYTES", 1 << 20)
    result = await sh(ctx_for(ws, "bwrap"), "head -c 3000000 /dev/zero > big; wc -c < big")
    assert (ws / "big").stat().st_size == 1 << 20, result.output
