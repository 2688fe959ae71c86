"""The ghost `shell` tool: scrubbed env, read-only allowlist, timeouts, kill on cancel, bwrap jail."""

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

from sparks.ghosts import shell
from sparks.ghosts.shell import SandboxUnavailable, ShellRefused, read_only_argv, sandbox_in_effect
from sparks.ghosts.tools import ToolContext, ToolResult, run_tool

_marker_numbers = itertools.count(1)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "a.txt").write_text("alpha\nbeta\n")
    (root / ".env").write_text("OPENAI_API_KEY=sk-live-from-dotenv\n")
    (tmp_path / "outside").mkdir()
    return root


@pytest.fixture
def bwrap_works() -> None:
    if sandbox_in_effect("auto") != "bwrap":
        pytest.skip("bubblewrap is not installed or cannot create namespaces in this environment")


@pytest.fixture(params=["none", "bwrap"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Runs a test without a jail and, where bubblewrap works, inside one."""
    if request.param == "bwrap":
        request.getfixturevalue("bwrap_works")
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


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def wait_until(predicate: object, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


async def test_env_has_no_api_keys_tokens_or_sparks_vars(
    ws: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("SPARKS_OPENAI_API_KEY", "sk-sparks")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:hunter2@db/app")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    result = await sh(ctx_for(ws, sandbox), "env")
    assert result.ok, result.output
    for leaked in ("sk-test", "sk-sparks", "ghp-token", "aws-secret", "hunter2", "_API_KEY"):
        assert leaked not in result.output
    assert "HARMLESS_SETTING=visible" in result.output


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
        "ls; rm -rf x",
        "ls && rm a.txt",
        "cat a.txt > b.txt",
        "cat a.txt | wc -l",
        "echo $(whoami)",
        "echo `whoami`",
        "cat $HOME/.bashrc",
        "find . -delete",
        "find . -exec rm {} \\;",
        "sort -o out.txt a.txt",
        "uniq a.txt out.txt",
        "rg --pre sh alpha",
        "git push",
        "git -C / status",
        "git diff --output=x",
        "/bin/rm a.txt",
        "cat ../outside/x",
        "cat /etc/passwd",
        "cat .env",
        "ls *.txt",
        "python -c 'print(1)'",
    ],
)
async def test_read_only_shell_refuses(ws: Path, command: str) -> None:
    before = names(ws)
    result = await sh(ctx_for(ws, read_only=True), command)
    assert not result.ok
    assert result.output.startswith("refused:"), result.output
    assert names(ws) == before


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("ls", "a.txt"),
        ("ls -la .", "a.txt"),
        ("cat a.txt", "alpha"),
        ("grep -n beta a.txt", "2:beta"),
        ("grep -rn 'alpha|beta' .", "[exit code 1]"),
        ("find . -name '*.txt'", "./a.txt"),
        ("wc -l a.txt", "2 a.txt"),
        ("echo 'a; b | c'", "a; b | c"),
        ("find . -name .env", "./.env"),
    ],
)
async def test_read_only_shell_accepts_read_only_programs(
    ws: Path, command: str, expected: str
) -> None:
    result = await sh(ctx_for(ws, read_only=True), command)
    assert expected in result.output, result.output


@pytest.fixture
def git_repo(ws: Path) -> Path:
    """`ws` as a git repository with `a.txt` committed (`.env` left untracked)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    identity |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    env = {**os.environ, **identity}
    for git_args in (["init", "-q"], ["add", "a.txt"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *git_args], cwd=ws, env=env, check=True, capture_output=True)
    return ws


async def test_read_only_git_status_and_log_run(git_repo: Path, sandbox: str) -> None:
    ws = git_repo
    ctx = ctx_for(ws, sandbox, read_only=True)
    status = await sh(ctx, "git status --short")
    log = await sh(ctx, "git log --oneline")
    assert status.ok and "?? .env" in status.output, status.output
    assert log.ok and "first" in log.output, log.output


async def test_read_only_recursive_grep_skips_secret_files(ws: Path) -> None:
    result = await sh(ctx_for(ws, read_only=True), "grep -rn sk-live .")
    assert "sk-live-from-dotenv" not in result.output
    rg = await sh(ctx_for(ws, read_only=True), "rg --hidden -g .env sk-live")
    assert "sk-live-from-dotenv" not in rg.output


def test_read_only_argv_runs_the_program_without_a_shell(ws: Path) -> None:
    argv = read_only_argv("grep -n 'a b' a.txt", ws, {"PATH": os.environ["PATH"]})
    assert Path(argv[0]).name == "grep" and Path(argv[0]).is_absolute()
    assert argv[1:3] == ["-n", "a b"] and "a.txt" in argv
    with pytest.raises(ShellRefused, match="shell syntax"):
        read_only_argv("ls\nrm a.txt", ws, {"PATH": os.environ["PATH"]})


def test_bwrap_configured_but_missing_raises_sandbox_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    shell._bwrap_probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="not installed"):
            sandbox_in_effect("bwrap")
        assert sandbox_in_effect("auto") == "none"
        assert sandbox_in_effect("none") == "none"
    finally:
        shell._bwrap_probe.cache_clear()
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
    result = await sh(ctx_for(ws, "bwrap", read_only=True), "find . -newer a.txt")
    assert result.ok, result.output
    argv = shell.bwrap_argv("bwrap", ws, read_only=True, home=None)
    assert ["--ro-bind", str(ws), str(ws)] == argv[
        argv.index(str(ws)) - 1 : argv.index(str(ws)) + 2
    ]
