"""Real Responses API clients against a live `sparks serve` subprocess on the fake upstream:
Codex CLI (`codex exec`, configured with exactly what `sparks connect codex` prints) and the
OpenAI Agents SDK's default Responses model (`Runner.run` with one function tool).

Codex comes from `tests/clients/install.sh` (npm `@openai/codex`, pinned); it runs with a clean
HOME and an outgoing proxy on a closed port, so it passes only if it needs nothing but Sparks.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sparks.cli.connect import connect

from .conftest import read_events, skip_or_fail
from .live_stack import LiveStack, live_stack
from .test_real_clients import INSTALL_HINT, find_tool, tool_env

pytestmark = pytest.mark.slow

KEY = "sk-real-codex-key-0123456789abcdef0123"
REPLY = "Hello from the fake upstream, relayed by Sparks."
CODEX_TIMEOUT_S = 60


class Stack(LiveStack):
    def finished(self, model: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Terminal events of the /v1/responses requests for `model`."""
        deadline = time.monotonic() + timeout
        while True:
            events = read_events(self.events)
            ids = {
                e["request_id"]
                for e in events
                if e["event"] == "request.received"
                and e.get("api") == "responses"
                and e.get("model") == model
            }
            done = [
                e
                for e in events
                if e.get("request_id") in ids and e["event"].startswith("request.")
                if e["event"] != "request.received"
            ]
            if done or time.monotonic() > deadline:
                return done
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with live_stack(tmp_path_factory.mktemp("codex-stack"), KEY, backend="fake", cls=Stack) as live:
        yield live


def codex_home(stack: Stack, home: Path) -> Path:
    """A CODEX_HOME whose config.toml is `sparks connect codex` output, as printed."""
    result = CliRunner().invoke(connect, ["codex", "--config", str(stack.config)])
    assert result.exit_code == 0, result.output
    assert 'wire_api = "responses"' in result.stdout
    codex_dir = home / ".codex"
    codex_dir.mkdir(parents=True)
    (codex_dir / "config.toml").write_text(result.stdout)
    return codex_dir


def run_codex(stack: Stack, tmp_path: Path, model: str) -> subprocess.CompletedProcess[str]:
    codex = find_tool("codex/node_modules/.bin/codex", "codex")
    if codex is None:
        skip_or_fail(f"codex is not installed: {INSTALL_HINT}")
    home = tmp_path / "home"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    env = tool_env(home, CODEX_HOME=str(codex_home(stack, home)), SPARKS_API_KEY=KEY)
    return subprocess.run(
        [codex, "exec", "--skip-git-repo-check", "-m", model, "say hello"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT_S,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_codex_exec_with_a_backend_model(stack: Stack, tmp_path: Path) -> None:
    stack.script("fake-model", [{"reply": REPLY}])
    try:
        proc = run_codex(stack, tmp_path, "fake/fake-model")
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPLY in proc.stdout
    done = stack.finished("fake/fake-model")[-1]
    assert done["event"] == "request.completed" and done["served_model"] == "fake/fake-model"
    received = [
        e
        for e in read_events(stack.events)
        if e["event"] == "request.received" and e.get("model") == "fake/fake-model"
    ]
    assert received[-1]["user_agent"].startswith("codex_exec/")
    assert "web_search" in received[-1]["dropped_tools"]


def test_codex_exec_with_the_scout_ghost(stack: Stack, tmp_path: Path) -> None:
    stack.script("fake-model", [{"reply": REPLY}])
    try:
        proc = run_codex(stack, tmp_path, "sparks/scout")
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPLY in proc.stdout
    done = stack.finished("sparks/scout")
    assert [e["event"] for e in done] == ["request.completed"]
    assert done[0]["served_model"] == "sparks/scout"


async def test_agents_sdk_runner_with_one_function_tool(stack: Stack) -> None:
    try:
        import agents
    except ImportError:
        skip_or_fail("openai-agents is not installed: pip install -e '.[dev]'")
    from openai import AsyncOpenAI

    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    stack.script(
        "fake-model",
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"reply": "It is {last_tool_result}."},
        ],
    )
    agents.set_tracing_disabled(True)
    async with AsyncOpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0) as client:
        model = agents.OpenAIResponsesModel(model="fake/fake-model", openai_client=client)
        agent = agents.Agent(
            name="weather", instructions="Answer briefly.", tools=[get_weather], model=model
        )
        try:
            result = await agents.Runner.run(agent, "What is the weather in Paris?")
        finally:
            stack.clear_script()
    assert calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    assert [e["event"] for e in stack.finished("fake/fake-model")][-2:] == [
        "request.completed",
        "request.completed",
    ]
