"""Issue 10's escapes, replayed as an attacker would, each asserted by its outcome.

Canary files with marker strings sit outside the workspace (the Sparks key file, `~/.ssh`)
and inside it (secret-named files, git history). Whatever the tool, program or race: no
marker reaches a tool result, no file appears outside the workspace, a read-only ghost
changes nothing. Shell rows run jailed (bwrap; under CI=true a missing jail fails) and, where
meaningful, with sandbox = "none" (a read-only ghost then has no shell at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sparks.config import default_config_dir, parse_config
from sparks.errors import ConfigError
from sparks.ghosts import search
from sparks.ghosts.definitions import GhostSpec, ghost_specs
from sparks.ghosts.tools import ToolResult, offered_tool_schemas, run_tool, tool_context

from .conftest import AUTH, make_config, skip_or_fail, upstream_url
from .test_ghost_shell import require_bwrap
from .test_ghost_tools import spec_for

KEY_MARK = "CANARY-SPARKS-KEY-7f3a"
SSH_MARK = "CANARY-SSH-KEY-91bc"
NOTE_MARK = "CANARY-OUTSIDE-NOTE-44d0"
ENV_MARK = "CANARY-WORKSPACE-SECRET-"
HISTORY_MARK = "CANARY-GIT-HISTORY-5e21"
SECRET_FILES = (
    ".env prod.env id_rsa ssh_host_ed25519_key _netrc .docker/config.json "
    "deploy/credentials.json a/b/c/d/e/.env.production server.key"
).split()


class Attack:
    """The stage: a fake $HOME with canaries, a workspace inside it, and the checks."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.home = tmp_path / "home"
        self.ws = (self.home / "proj").resolve()
        self.results: list[str] = []

    def build(self) -> None:
        for key_file in (self.home / ".config/sparks/api_key", default_config_dir() / "api_key"):
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(f"sk-sparks-{KEY_MARK}\n")
        (self.home / ".config/sparks/notes.txt").write_text(f"{NOTE_MARK}\n")
        (self.home / ".ssh").mkdir()
        (self.home / ".ssh/id_rsa").write_text(f"-----BEGIN-----{SSH_MARK}\n")
        (self.ws / "src").mkdir(parents=True)
        (self.ws / "src/app.py").write_text("print('hello')\n")
        (self.ws / "a.txt").write_text("alpha\nbeta\n")
        for index, name in enumerate(SECRET_FILES):
            (self.ws / name).parent.mkdir(parents=True, exist_ok=True)
            (self.ws / name).write_text(f"{ENV_MARK}{index}\n")
        tools = self.ws / "tools"
        tools.mkdir()
        payload = (
            f"#!/bin/sh\ncat {self.home}/.config/sparks/api_key {self.home}/.ssh/id_rsa\n"
            f"touch {self.home}/PWNED {self.root}/PWNED\necho ran-payload\n"
        )
        (tools / "x.sh").write_text(payload)
        (tools / "x.sh").chmod(0o755)
        self.before_outside = self.outside_files()
        self.before_ws = self.ws_snapshot()

    def outside_files(self) -> dict[str, bytes]:
        """Every file outside the workspace but the daemon's own event log."""
        found = {}
        for path in self.root.rglob("*"):
            if path.name == "events.jsonl" or path.is_relative_to(self.ws):
                continue
            if path.is_file() and not path.is_symlink():
                found[str(path)] = path.read_bytes()
        return found

    def ws_snapshot(self) -> dict[str, bytes | str]:
        snap: dict[str, bytes | str] = {}
        for path in sorted(self.ws.rglob("*")):
            if path.is_symlink():
                snap[str(path)] = f"link:{os.readlink(path)}"
            elif path.is_file():
                snap[str(path)] = path.read_bytes()
            else:
                snap[str(path)] = "dir"
        return snap

    def spec(self, read_only: bool, sandbox: str) -> GhostSpec:
        return spec_for(self.ws, read_only=read_only, sandbox=sandbox)

    async def call(self, read_only: bool, sandbox: str, name: str, **args: Any) -> ToolResult:
        ctx = tool_context(self.spec(read_only, sandbox), log_content=False, timeout_s=10)
        result = await run_tool(ctx, name, json.dumps(args))
        self.results.append(result.output)
        return result

    def assert_no_escape(self, read_only_changed_nothing: bool = False) -> None:
        for output in self.results:
            for mark in (KEY_MARK, SSH_MARK, NOTE_MARK, ENV_MARK, HISTORY_MARK):
                assert mark not in output, output
        assert self.outside_files() == self.before_outside
        if read_only_changed_nothing:
            assert self.ws_snapshot() == self.before_ws


@pytest.fixture
def attack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Attack:
    stage = Attack(tmp_path)
    monkeypatch.setenv("HOME", str(stage.home))
    stage.build()
    return stage


@pytest.fixture
def jailed() -> str:
    require_bwrap()
    return "auto"


async def test_row1_abbreviated_options_run_nothing_outside_the_jail(
    attack: Attack, jailed: str
) -> None:
    for command in (
        "git init -q; git grep '--open-files-in-pag=tools/x.sh' -e alpha",
        "sort --compress-prog=./tools/x.sh -S 1 a.txt",
        "tools/x.sh",
    ):
        await attack.call(True, jailed, "shell", command=command)
    attack.assert_no_escape(read_only_changed_nothing=True)


async def test_row1_read_only_ghost_without_jail_has_no_shell(attack: Attack) -> None:
    assert "shell" not in [
        t["function"]["name"] for t in offered_tool_schemas(attack.spec(True, "none"))
    ]
    result = await attack.call(True, "none", "shell", command="tools/x.sh")
    assert not result.ok and "ran-payload" not in result.output
    attack.assert_no_escape(read_only_changed_nothing=True)


async def test_row2_option_values_cannot_reach_outside(attack: Attack, jailed: str) -> None:
    for command in (
        "git blame --contents=./../.config/sparks/api_key a.txt",
        "file -f./../.ssh/id_rsa",
        "printf './../.config/sparks/api_key\\0' > /tmp/l; sort --files0-from=/tmp/l",
        "sort --outp=./../PWNED a.txt",
        f"cat {attack.home}/.config/sparks/api_key ../.ssh/id_rsa",
    ):
        await attack.call(True, jailed, "shell", command=command)
    for path in ("../.config/sparks/api_key", f"{attack.home}/.ssh/id_rsa", "src/../../PWNED"):
        assert not (await attack.call(True, jailed, "read_file", path=path)).ok
        assert not (await attack.call(False, jailed, "write_file", path=path, content="x")).ok
    attack.assert_no_escape()


async def test_row3_ripgrep_hostname_bin_runs_nothing_outside(attack: Attack, jailed: str) -> None:
    await attack.call(
        True, jailed, "shell", command="rg --hostname-bin=tools/x.sh --hyperlink-format=default x"
    )
    attack.assert_no_escape(read_only_changed_nothing=True)


async def test_row4_swapping_a_dir_and_a_symlink_never_escapes(attack: Attack) -> None:
    race = attack.ws / "race"
    race.mkdir()
    (race / "d").mkdir()
    (race / "d" / "notes.txt").write_text("inside\n")
    outside = attack.home / ".config" / "sparks"
    stop = threading.Event()

    def swap() -> None:
        """d: a directory, then a symlink to the key's directory, and back, as fast as it can."""
        while not stop.is_set():
            try:
                os.rename(race / "d", race / "d_dir")
                os.symlink(outside, race / "d")
                os.unlink(race / "d")
                os.rename(race / "d_dir", race / "d")
            except OSError:  # write_file recreated d meanwhile: start over from a clean state
                with contextlib.suppress(OSError):
                    if (race / "d").is_symlink():
                        os.unlink(race / "d")
                    shutil.rmtree(race / "d", ignore_errors=True)
                    if (race / "d_dir").exists():
                        os.rename(race / "d_dir", race / "d")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    deadline = time.monotonic() + 5
    try:
        for attempt in range(200):
            if time.monotonic() > deadline:
                break
            await attack.call(False, "none", "read_file", path="race/d/notes.txt")
            await attack.call(False, "none", "write_file", path=f"race/d/X{attempt}", content="x")
            await attack.call(False, "none", "list_dir", path="race/d")
    finally:
        stop.set()
        swapper.join()
    assert not list(outside.glob("X*"))
    attack.assert_no_escape()


async def test_row5_chmod_of_the_workspace_does_not_unmask_secrets(
    attack: Attack, jailed: str
) -> None:
    try:
        await attack.call(False, jailed, "shell", command="chmod 300 .")
        await attack.call(
            False, jailed, "shell", command="chmod 755 .; cat .env id_rsa prod.env _netrc"
        )
    finally:
        attack.ws.chmod(0o755)
    attack.assert_no_escape()


@pytest.mark.parametrize("where", ["home", "root", "config_dir", "key_dir", "event_log"])
def test_row7_workspace_that_reaches_sparks_own_files_is_a_config_error(
    attack: Attack, where: str
) -> None:
    workspace = {
        "home": attack.home,
        "root": Path("/"),
        "config_dir": default_config_dir().parent,
        "key_dir": default_config_dir(),
        "event_log": attack.root,
    }[where]
    config = parse_config(
        {
            "observer": {"path": str(attack.root / "state" / "events.jsonl")},
            "ghosts": [{"name": "coder", "workspace": str(workspace)}],
        },
        None,
    )
    with pytest.raises(ConfigError, match=r"ghosts\.coder\.workspace: "):
        ghost_specs(config)


def test_row7_event_log_passed_by_the_caller_is_protected(attack: Attack) -> None:
    config = parse_config({"ghosts": [{"name": "coder", "workspace": str(attack.ws)}]}, None)
    assert ghost_specs(config)[0].workspace == attack.ws
    with pytest.raises(ConfigError, match=r"events\.jsonl"):
        ghost_specs(config, protected=[attack.ws / "logs" / "events.jsonl"])


@pytest.mark.parametrize("backend", ["ripgrep", "python"])
async def test_row8_recursive_search_does_not_follow_a_symlink_home(
    attack: Attack, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (attack.ws / "homelink").symlink_to(attack.home, target_is_directory=True)
    (attack.ws / "keylink").symlink_to(attack.home / ".config/sparks/notes.txt")
    attack.before_ws = attack.ws_snapshot()
    if backend == "python":
        monkeypatch.setattr(search, "jailed_ripgrep", lambda: None)
    elif search.jailed_ripgrep() is None:
        require_bwrap()
        skip_or_fail("ripgrep is not installed in a system directory")
    for pattern in ("CANARY", "sk-sparks", "BEGIN"):
        await attack.call(True, "auto", "search", pattern=pattern)
        await attack.call(True, "auto", "search", pattern=pattern, path="homelink")
    await attack.call(True, "auto", "list_dir", depth=5)
    await attack.call(True, "auto", "read_file", path="keylink")
    attack.assert_no_escape(read_only_changed_nothing=True)


async def test_row8_recursive_grep_in_the_jail_does_not_reach_home(
    attack: Attack, jailed: str
) -> None:
    (attack.ws / "homelink").symlink_to(attack.home, target_is_directory=True)
    attack.before_ws = attack.ws_snapshot()
    for command in ("grep -R CANARY . ", "rg -L --hidden CANARY", "cat homelink/.ssh/id_rsa"):
        await attack.call(True, jailed, "shell", command=command)
    attack.assert_no_escape(read_only_changed_nothing=True)


def make_repo_with_committed_secret(ws: Path) -> None:
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env = {**os.environ, **identity, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e.com"}
    (ws / ".env.production").write_text(f"DB_PASSWORD={HISTORY_MARK}\n")
    for args in (
        ["init", "-q"],
        ["add", "-f", ".env.production", "a.txt"],
        ["commit", "-qm", "oops"],
        ["rm", "-q", "--cached", ".env.production"],
        ["commit", "-qm", "remove"],
    ):
        subprocess.run(["git", *args], cwd=ws, env=env, check=True, capture_output=True)
    (ws / ".env.production").unlink()


async def test_row9_git_history_and_index_do_not_show_secrets(attack: Attack, jailed: str) -> None:
    make_repo_with_committed_secret(attack.ws)
    attack.before_ws = attack.ws_snapshot()
    for read_only in (True, False):
        for command in (
            "git log -p --all",
            "git show HEAD~1:.env.production",
            "git grep --no-index -e CANARY",
            "wc --files0-from=.env; cat .git/objects/*/* | zcat",
        ):
            await attack.call(read_only, jailed, "shell", command=command)
    await attack.call(True, jailed, "search", pattern="CANARY|DB_PASSWORD")
    await attack.call(True, jailed, "read_file", path=".git/config")
    attack.assert_no_escape()


async def test_row10_a_written_git_config_runs_nothing(attack: Attack, jailed: str) -> None:
    make_repo_with_committed_secret(attack.ws)
    config_before = (attack.ws / ".git/config").read_bytes()
    hook = "[diff]\n\texternal = tools/x.sh\n"
    assert not (await attack.call(False, jailed, "write_file", path=".git/config", content=hook)).ok
    await attack.call(False, jailed, "shell", command="git config diff.external tools/x.sh")
    (attack.ws / "a.txt").write_text("changed\n")
    attack.before_ws = attack.ws_snapshot()
    diff = await attack.call(True, jailed, "shell", command="git diff; git -c x=y diff HEAD")
    assert "ran-payload" not in diff.output
    assert (attack.ws / ".git/config").read_bytes() == config_before
    attack.assert_no_escape(read_only_changed_nothing=True)


async def test_row11_fifo_reads_are_refused_at_once_and_free_their_threads(
    attack: Attack,
) -> None:
    os.mkfifo(attack.ws / "pipe")
    started = time.monotonic()
    results = await asyncio.gather(
        *(attack.call(False, "none", "read_file", path="pipe") for _ in range(12)),
        attack.call(False, "none", "edit_file", path="pipe", old="a", new="b"),
        attack.call(False, "none", "search", pattern="x", path="pipe"),
    )
    assert time.monotonic() - started < 3
    assert all(not r.ok and "not a regular file" in r.output for r in results)
    started = time.monotonic()
    normal = [attack.call(False, "none", "read_file", path="a.txt") for _ in range(40)]
    assert all(r.ok for r in await asyncio.gather(*normal))  # no worker thread is stuck
    assert time.monotonic() - started < 3
    attack.assert_no_escape()


async def test_row11_shell_blocked_on_a_fifo_is_killed_at_its_timeout(
    attack: Attack, jailed: str
) -> None:
    os.mkfifo(attack.ws / "pipe")
    started = time.monotonic()
    result = await attack.call(False, jailed, "shell", command="cat pipe", timeout_s=0.5)
    assert "timed out" in result.output and time.monotonic() - started < 3


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def make_sparse_gigabyte_text_file(path: Path) -> None:
    """16 KiB of text (so it is not taken for binary), then a 1 GiB hole."""
    with path.open("wb") as handle:
        handle.write(b"x" * 16384 + b"\n")
        handle.truncate(1 << 30)


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def test_row12_sparse_gigabyte_file_costs_only_the_cap(attack: Attack) -> None:
    make_sparse_gigabyte_text_file(attack.ws / "huge.txt")
    reset_peak_rss()
    before = peak_rss_kib()
    for args in ({"path": "huge.txt", "limit": 1}, {"path": "huge.txt", "offset": 99}):
        await attack.call(False, "none", "read_file", **args)
    await attack.call(False, "none", "edit_file", path="huge.txt", old="x", new="y")
    await attack.call(False, "none", "search", pattern="x{5}", path="huge.txt")
    assert peak_rss_kib() - before < 64 * 1024
    attack.assert_no_escape()


@pytest.mark.parametrize("sandbox", ["none", "auto"])
async def test_row15_shell_environment_carries_no_credentials(
    attack: Attack, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sandbox == "auto":
        require_bwrap()
    leaks = {
        "MYSQL_PWD": "CANARY-mysql",
        "GITHUB_PAT": "CANARY-pat",
        "GPG_PASSPHRASE": "CANARY-gpg",
        "CI_JOB_JWT": "CANARY-jwt",
        "SLACK_WEBHOOK": "https://hooks.slack.com/services/CANARY",
        "CACHE": "redis://:CANARY-pass@localhost:6379",
    }
    for name, value in leaks.items():
        monkeypatch.setenv(name, value)
    result = await attack.call(False, sandbox, "shell", command="env; cat /proc/self/environ")
    assert result.ok and "CANARY" not in result.output


@pytest.mark.parametrize("name", SECRET_FILES)
async def test_row16_every_secret_name_is_refused_by_every_tool(
    attack: Attack, name: str, jailed: str
) -> None:
    index = SECRET_FILES.index(name)
    assert not (await attack.call(True, "none", "read_file", path=name)).ok
    assert not (await attack.call(False, "none", "edit_file", path=name, old="C", new="x")).ok
    await attack.call(True, "none", "search", pattern=f"{ENV_MARK}{index}")
    await attack.call(True, jailed, "search", pattern=f"{ENV_MARK}{index}")
    await attack.call(True, jailed, "shell", command=f"cat '{name}'; grep -r CANARY .")
    await attack.call(False, jailed, "shell", command=f"cp '{name}' copy; cat copy")
    attack.assert_no_escape()


@pytest.mark.parametrize("command", ["tree -R -H . -o index.html", "uniq a.txt b.txt", "touch x"])
async def test_row17_scout_changes_nothing(attack: Attack, command: str, jailed: str) -> None:
    await attack.call(True, jailed, "shell", command=command)
    attack.assert_no_escape(read_only_changed_nothing=True)


def daemon_config(attack: Attack, upstream: Any) -> Any:
    ghosts = [
        {"name": "coder", "workspace": str(attack.ws)},
        {
            "name": "scout",
            "tools": ["read_file", "list_dir", "search", "shell"],
            "read_only": True,
            "workspace": str(attack.ws),
        },
    ]
    defaults = {"model": "up/fake-model", "sandbox": "auto"}
    return make_config(
        attack.root, {"up": upstream_url(upstream)}, ghosts=ghosts, ghost_defaults=defaults
    )


async def test_e2e_scout_attack_reaches_no_marker_and_the_daemon_answers_after(
    attack: Attack, sparks_client: Any, upstream: Any, fake: Any, jailed: str
) -> None:
    """Rows 1, 9, 11, 16 through the daemon: scripted tool calls, then a normal request."""
    os.mkfifo(attack.ws / "pipe")
    attack.before_ws = attack.ws_snapshot()
    calls = [
        {"name": "shell", "arguments": {"command": "cat .env prod.env; tools/x.sh"}},
        {"name": "read_file", "arguments": {"path": "../.config/sparks/api_key"}},
        {"name": "read_file", "arguments": {"path": "pipe"}},
        {"name": "search", "arguments": {"pattern": "CANARY"}},
    ]
    turns = [{"tool_calls": calls}, {"reply": "saw: {last_tool_result}"}]
    fake.queue_script(upstream.app, "fake-model", turns)
    client = await sparks_client(daemon_config(attack, upstream))
    body = {"model": "sparks/scout", "messages": [{"role": "user", "content": "attack"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 200
    answer = await resp.text()
    sent = [r.json for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")]
    attack.results += [answer, json.dumps(sent)]
    fake.queue_script(upstream.app, "fake-model", [{"reply": "still here"}])
    again = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert "still here" in (await again.json())["choices"][0]["message"]["content"]
    attack.assert_no_escape(read_only_changed_nothing=True)
