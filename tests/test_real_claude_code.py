"""Claude Code (@anthropic-ai/claude-code, pinned in tests/clients/install.sh) run headless
against a live `sparks serve` subprocess on the fake upstream subprocess (SPEC §9.2).

Claude Code gets the env lines `sparks connect claude-code` prints, a temp HOME, and an outgoing
proxy on a closed loopback port, so a run passes only if it needs nothing but Sparks.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparks.cli.connect import connect

from .conftest import read_events, skip_or_fail
from .live_stack import OFFLINE, LiveStack, live_stack

pytestmark = pytest.mark.slow

KEY = "sk-claude-code-key-0123456789abcdef0123"
TOOLS_DIR = Path(
    os.environ.get("SPARKS_TEST_TOOLS") or Path.home() / ".cache" / "sparks-test-tools"
)
CLAUDE = TOOLS_DIR / "claude-code" / "node_modules" / ".bin" / "claude"
VERSION = "2.1.197"
REPLY = "Hello from the fake upstream, relayed by Sparks to Claude Code."
TIMEOUT_S = 60

Stack = LiveStack


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
    tail = '[ghost_defaults]\nmodel = "up/fake-model"\n'
    with live_stack(home, KEY, config_tail=tail) as live:
        yield live


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
    stack.script("fake-model", [{"reply": REPLY}] * 3)
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
