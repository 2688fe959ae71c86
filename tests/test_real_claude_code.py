"""Claude Code (@anthropic-ai/claude-code, pinned in tests/clients/install.sh) run headless
against a live `sparks serve` subprocess on the fake upstream subprocess (SPEC §9.2).

Claude Code gets the env lines `sparks connect claude-code` prints, a temp HOME, and an outgoing
proxy on a closed loopback port, so a run passes only if it needs nothing but Sparks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparks.cli.connect import connect

from .conftest import ROOT, free_port, read_events, skip_or_fail
from .test_serve_subprocess import child_env, read_line_with, stop

pytestmark = pytest.mark.slow

KEY = "sk-claude-code-key-0123456789abcdef0123"
TOOLS_DIR = Path(
    os.environ.get("SPARKS_TEST_TOOLS") or Path.home() / ".cache" / "sparks-test-tools"
)
CLAUDE = TOOLS_DIR / "claude-code" / "node_modules" / ".bin" / "claude"
VERSION = "2.1.197"
REPLY = "Hello from the fake upstream, relayed by Sparks to Claude Code."
TIMEOUT_S = 60
OFFLINE = {
    name: "http://127.0.0.1:9"  # discard port, nothing listens: any outside fetch fails fast
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")
} | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass(frozen=True)
class Stack:
    root: str  # the daemon's root URL, Claude Code's ANTHROPIC_BASE_URL
    upstream: str
    config: Path
    events: Path

    def script(self, turns: list[dict[str, object]]) -> None:
        body = json.dumps({"model": "fake-model", "turns": turns}).encode()
        url = self.upstream.removesuffix("/v1") + "/_fake/script"
        with urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=5):
            pass

    def clear_script(self) -> None:
        url = self.upstream.removesuffix("/v1") + "/_fake/script"
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5):
            pass


@pytest.fixture(scope="module")
def claude() -> str:
    if not CLAUDE.exists():
        skip_or_fail("Claude Code is not installed: run `bash tests/clients/install.sh`")
    version = subprocess.run([CLAUDE, "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith(VERSION), version.stdout + version.stderr
    return str(CLAUDE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("claude-stack")
    workspace = home / "ws"  # the ghosts' workspace: serve's cwd, apart from its own files
    workspace.mkdir()
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(home),
    )
    serve = None
    try:
        upstream = read_line_with(fake, "listening on")[-1].rsplit(" ", 1)[-1].strip()
        port = free_port()
        config, events = home / "config.toml", home / "events.jsonl"
        config.write_text(
            f'[openai_api]\nbind = "127.0.0.1:{port}"\n'
            f'[observer]\npath = "{events}"\nconsole = false\n'
            f'[backends.up]\nbase_url = "{upstream}"\n'
            '[ghost_defaults]\nmodel = "up/fake-model"\n'
        )
        with open(home / "serve.stderr", "w") as stderr:
            serve = subprocess.Popen(
                [sys.executable, "-m", "sparks", "serve", "--config", str(config)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=workspace,
                env=child_env(home, SPARKS_OPENAI_API_KEY=KEY),
            )
        read_line_with(serve, "events:")
        yield Stack(f"http://127.0.0.1:{port}", upstream, config, events)
    finally:
        if serve is not None:
            stop(serve)
        stop(fake)


def connect_env(stack: Stack) -> dict[str, str]:
    """The `export NAME=value` lines of `sparks connect claude-code --show-key`."""
    runner = CliRunner(env={"SPARKS_OPENAI_API_KEY": KEY})
    result = runner.invoke(connect, ["claude-code", "--config", str(stack.config), "--show-key"])
    assert result.exit_code == 0, result.output
    pairs = re.findall(r"^export (\w+)=(\S+)", result.stdout, re.M)
    return {name: value.strip("'\"") for name, value in pairs}


def run_claude(claude: str, stack: Stack, tmp_path: Path, model: str, **auth: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKS_", "ANTHROPIC_"))}
    home = tmp_path / "home"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        **OFFLINE,
    )
    env.update({k: v for k, v in connect_env(stack).items() if k != "ANTHROPIC_AUTH_TOKEN"})
    env.update(auth)
    project = tmp_path / "project"
    project.mkdir()
    stack.script([{"reply": REPLY}] * 3)
    try:
        proc = subprocess.run(
            [claude, "-p", "say hello", "--model", model],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def completed(stack: Stack, model: str) -> list[dict[str, object]]:
    events = read_events(stack.events)
    ids = {
        e["request_id"]
        for e in events
        if e["event"] == "request.received"
        and e.get("model") == model
        and e.get("api") == "messages"
    }
    return [e for e in events if e["event"] == "request.completed" and e["request_id"] in ids]


def test_connect_points_every_claude_model_at_sparks(stack: Stack) -> None:
    env = connect_env(stack)
    assert env["ANTHROPIC_BASE_URL"] == stack.root and env["ANTHROPIC_AUTH_TOKEN"] == KEY
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "up/fake-model"


@pytest.mark.parametrize("auth", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_claude_print_with_a_backend_model(
    claude: str, stack: Stack, tmp_path: Path, auth: str
) -> None:
    out = run_claude(claude, stack, tmp_path, "up/fake-model", **{auth: KEY})
    assert REPLY in out
    assert completed(stack, "up/fake-model")


def test_claude_print_with_the_scout_ghost(claude: str, stack: Stack, tmp_path: Path) -> None:
    out = run_claude(claude, stack, tmp_path, "sparks/scout", ANTHROPIC_AUTH_TOKEN=KEY)
    assert REPLY in out
    [done] = completed(stack, "sparks/scout")
    assert done["served_model"] == "sparks/scout"
