"""Real clients against a live `sparks serve` subprocess on the fake upstream subprocess.

The official `openai` npm and Python SDKs, then real coding tools run headless (OpenCode, Aider,
Continue's `cn`, `llm`) with the configuration `sparks connect` prints, on backend models and on
ghosts that merge the tools these clients send. `tests/clients/install.sh` installs the tools;
a test whose tool is missing skips and says how to install it. The tools get an outgoing proxy
on a closed loopback port, so a run passes only if it needs nothing but Sparks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from sparks.cli.connect import connect

from .conftest import ROOT, read_events, skip_or_fail
from .live_stack import OFFLINE, LiveStack, live_stack

pytestmark = pytest.mark.slow

KEY = "sk-real-clients-key-0123456789abcdef0123"
NODE_DIR = ROOT / "tests" / "clients" / "node"
# Read at import: conftest's autouse fixture clears SPARKS_* variables for each test.
TOOLS_DIR = Path(
    os.environ.get("SPARKS_TEST_TOOLS") or Path.home() / ".cache" / "sparks-test-tools"
)
INSTALL_HINT = "run `bash tests/clients/install.sh`"
TOOL_TIMEOUT_S = 90
# One upstream model per tool, so each tool's requests are told apart in the event log.
UPSTREAM_MODELS = "fake-model,fake-opencode,fake-aider,fake-ghost"
GHOST_MODEL = "fake-ghost"  # the ghosts' model: each ghost test queues its turns for it
REPLY = "Hello from the fake upstream, relayed by Sparks."
GHOST_REPLY = "The workspace holds notes.txt; nothing else to report."
LIST_DIR = {"tool_calls": [{"name": "list_dir", "arguments": {"path": "."}}]}
AIDER_FLAGS = (
    "--no-git",
    "--yes-always",
    "--no-check-update",
    "--analytics-disable",
    "--no-pretty",
    "--no-stream",
    "--no-show-release-notes",
)


class Stack(LiveStack):
    def completed_user_agents(self, model: str, timeout: float = 5.0) -> list[str]:
        """User agents of the requests for `model` that ended in request.completed."""
        deadline = time.monotonic() + timeout
        while True:
            events = read_events(self.events)
            agents = {
                e["request_id"]: e.get("user_agent") or ""
                for e in events
                if e["event"] == "request.received" and e.get("model") == model
            }
            done = [
                agents[e["request_id"]]
                for e in events
                if e["event"] == "request.completed" and e.get("request_id") in agents
            ]
            if done or time.monotonic() > deadline:
                return done
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The fake upstream and `sparks serve`, both real subprocesses, shared by this module."""
    home = tmp_path_factory.mktemp("stack")
    workspace = home / "ghosts"  # the ghosts' workspace: apart from config and events
    workspace.mkdir()
    (workspace / "notes.txt").write_text("Nothing to see here.\n")
    ghosts = "".join(
        f'[[ghosts]]\nname = "{name}"\ndescription = "{name}"\nworkspace = "{workspace}"\n'
        + ("read_only = true\n" if name == "scout" else "")
        for name in ("coder", "scout")
    )
    tail = (
        '[backends.up.model_info."fake-opencode"]\ncontext_length = 32768\n'
        '[backends.up.model_info."fake-aider"]\ncontext_length = 16384\n'
        f'[ghost_defaults]\nmodel = "up/{GHOST_MODEL}"\nsandbox = "none"\n{ghosts}'
    )
    fake_args = ("--models", UPSTREAM_MODELS)
    with live_stack(home, KEY, config_tail=tail, fake_args=fake_args, cls=Stack) as live:
        yield live


def connect_output(stack: Stack, tool: str) -> str:
    result = CliRunner().invoke(connect, [tool, "--config", str(stack.config)])
    assert result.exit_code == 0, result.output
    return result.stdout


def tool_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean home for the tool (no user config leaks in) and no way out but to Sparks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKS_", "OPENCODE_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        **OFFLINE,
    )
    env.update(extra)
    return env


def run_opencode(
    opencode: str, config: Path, tmp_path: Path, model: str, prompt: str
) -> subprocess.CompletedProcess[str]:
    """`opencode run` headless in `tmp_path/workspace`, with the given config and no network."""
    env = tool_env(
        tmp_path / "home",
        SPARKS_API_KEY=KEY,
        OPENCODE_CONFIG=str(config),
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_DEFAULT_PLUGINS="1",
        OPENCODE_DISABLE_LSP_DOWNLOAD="1",
        OPENCODE_DISABLE_SHARE="1",
    )
    return subprocess.run(
        [opencode, "run", "--model", model, prompt],
        cwd=tmp_path / "workspace",
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def find_tool(relative: str, name: str) -> str | None:
    installed = TOOLS_DIR / relative
    return str(installed) if installed.exists() else shutil.which(name)


# --- the official SDKs ---------------------------------------------------------------------


def test_node_openai_client_plain_and_streaming(stack: Stack) -> None:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        skip_or_fail(f"tests/clients/node/node_modules is missing: {INSTALL_HINT}")
    proc = subprocess.run(
        [node, "chat.mjs", "up/fake-model", "hello from node"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "OPENAI_BASE_URL": stack.base_url, "OPENAI_API_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert "up/fake-model" in result["models"] and "sparks/coder" in result["models"]
    assert result["plain"]["content"] == "echo: hello from node"
    assert result["plain"]["finish_reason"] == "stop"
    assert result["plain"]["request_id"].startswith("req_")
    assert result["stream"]["content"] == "echo: hello from node"
    assert result["stream"]["finish_reason"] == "stop" and result["stream"]["chunks"] > 2
    assert result["stream"]["usage"]["total_tokens"] > 0
    agents = stack.completed_user_agents("up/fake-model")
    assert any(agent.startswith("OpenAI/JS") for agent in agents)


def test_python_sdk_sync_streaming_with_usage(stack: Stack) -> None:
    with openai.OpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="up/fake-model",
                messages=[{"role": "user", "content": "sync stream"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: sync stream"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_python_sdk_async_streaming(stack: Stack) -> None:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="up/fake-model",
            messages=[{"role": "user", "content": "async stream"}],
            stream=True,
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        plain = await client.chat.completions.create(
            model="up/fake-model", messages=[{"role": "user", "content": "async plain"}]
        )
    assert "".join(pieces) == "echo: async stream"
    assert plain.choices[0].message.content == "echo: async plain"


# --- coding tools, headless ------------------------------------------------------------------


def test_opencode_run_completes_through_sparks(stack: Stack, tmp_path: Path) -> None:
    """`opencode run` with exactly the provider config `sparks connect opencode` prints."""
    opencode = find_tool("opencode/node_modules/.bin/opencode", "opencode")
    if opencode is None:
        skip_or_fail(f"opencode is not installed: {INSTALL_HINT}")
    config = tmp_path / "opencode.json"
    config.write_text(connect_output(stack, "opencode"))
    assert "up/fake-opencode" in json.loads(config.read_text())["provider"]["sparks"]["models"]
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    stack.script("fake-opencode", [{"reply": REPLY}] * 4)  # the title request asks too
    try:
        proc = run_opencode(opencode, config, tmp_path, "sparks/up/fake-opencode", "Say hello.")
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPLY in proc.stdout
    agents = stack.completed_user_agents("up/fake-opencode")
    assert agents and all(agent.startswith("opencode/") for agent in agents)


def test_aider_message_completes_through_sparks(stack: Stack, tmp_path: Path) -> None:
    """`aider --message` with the env and model metadata `sparks connect aider` prints."""
    aider = find_tool("aider/bin/aider", "aider")
    if aider is None:
        skip_or_fail(f"aider is not installed: {INSTALL_HINT}")
    snippet = connect_output(stack, "aider")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    metadata = re.search(r"<<'EOF'\n(.*?)\nEOF", snippet, re.S)
    assert metadata is not None, snippet
    (workspace / ".aider.model.metadata.json").write_text(metadata[1])
    stack.script("fake-aider", [{"reply": REPLY}] * 2)
    env = tool_env(
        tmp_path / "home",
        OPENAI_API_BASE=stack.base_url,
        OPENAI_API_KEY=KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    try:
        proc = subprocess.run(
            [aider, "--model", "openai/up/fake-aider", "--message", "Say hello.", *AIDER_FLAGS],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPLY in proc.stdout
    assert "Unknown context window" not in proc.stdout  # it read the metadata snippet
    assert len(stack.completed_user_agents("up/fake-aider")) == 1


# --- ghosts inside coding agents: the agents' tools merged (SPEC §5.1) ----------------------


GHOST_TOOLS = {"read_file", "list_dir", "search", "write_file", "edit_file", "shell"}


def merged_tools(stack: Stack, before: int) -> list[str]:
    """The tools offered to the ghost's model since request `before` (the widest offer: a title
    request may come without tools): the ghost's own, then the client's."""
    requests = stack.upstream_requests(GHOST_MODEL)[before:]
    assert requests, "the ghost never called its model"
    names = max(([t["function"]["name"] for t in r.get("tools") or []] for r in requests), key=len)
    assert names[:3] == ["read_file", "list_dir", "search"], names
    assert set(names) - GHOST_TOOLS, f"the client's tools were not offered: {names}"
    return names


def test_opencode_run_with_a_ghost_merges_its_tools(stack: Stack, tmp_path: Path) -> None:
    """`opencode run --model sparks/sparks/coder`: OpenCode sends its tools, the ghost runs its
    own, the answer arrives and the ghost's step is in the log."""
    opencode = find_tool("opencode/node_modules/.bin/opencode", "opencode")
    if opencode is None:
        skip_or_fail(f"opencode is not installed: {INSTALL_HINT}")
    config = tmp_path / "opencode.json"
    config.write_text(connect_output(stack, "opencode"))
    models = list(json.loads(config.read_text())["provider"]["sparks"]["models"])
    assert models.index("sparks/coder") > models.index("up/fake-model")  # ghosts after
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    stack.script(GHOST_MODEL, [LIST_DIR, *[{"reply": GHOST_REPLY}] * 6])
    before = len(stack.upstream_requests(GHOST_MODEL))
    try:
        proc = run_opencode(
            opencode, config, tmp_path, "sparks/sparks/coder", "What is in the workspace?"
        )
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert GHOST_REPLY in proc.stdout
    names = merged_tools(stack, before)
    assert "bash" in names  # OpenCode's own tools, offered beside the ghost's
    assert [s["tool"] for s in stack.ghost_steps("coder")][:1] == ["list_dir"]


def continue_setup(stack: Stack, tmp_path: Path, selected: str | None = None) -> tuple[Path, Path]:
    """`sparks connect continue` output as-is, its key in ~/.continue/.env (as the snippet says),
    and optionally a model picked as `/model` would persist it."""
    home = tmp_path / "home"
    (home / ".continue" / "index").mkdir(parents=True)
    (home / ".continue" / ".env").write_text(f"SPARKS_API_KEY={KEY}\n")
    if selected is not None:
        context = {"cliSelectedModel": selected}
        (home / ".continue" / "index" / "globalContext.json").write_text(json.dumps(context))
    config = tmp_path / "continue.yaml"
    config.write_text(connect_output(stack, "continue"))
    return home, config


def run_cn(
    cn: str, home: Path, config: Path, cwd: Path, prompt: str
) -> subprocess.CompletedProcess:
    env = tool_env(home, CONTINUE_CLI_ENABLE_TELEMETRY="0", CONTINUE_METRICS_ENABLED="0")
    return subprocess.run(
        [cn, "-p", prompt, "--config", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def find_cn() -> str:
    cn = find_tool("continue/node_modules/.bin/cn", "cn")
    if cn is None:
        skip_or_fail(f"Continue's cn is not installed: {INSTALL_HINT}")
    return cn


def test_continue_cn_uses_the_first_model_of_the_snippet(stack: Stack, tmp_path: Path) -> None:
    """`cn -p` takes the first model: a backend model, not a ghost."""
    cn = find_cn()
    home, config = continue_setup(stack, tmp_path)
    stack.script("fake-model", [{"reply": REPLY}] * 3)
    try:
        proc = run_cn(cn, home, config, tmp_path, "Say hello.")
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPLY in proc.stdout
    agents = stack.completed_user_agents("up/fake-model")
    assert agents, "cn's request did not reach up/fake-model"


def test_continue_cn_with_the_scout_ghost(stack: Stack, tmp_path: Path) -> None:
    """`cn -p` on sparks/scout (picked as `/model` persists it): cn's tools are merged, the
    ghost lists its workspace and answers."""
    cn = find_cn()
    home, config = continue_setup(stack, tmp_path, selected="sparks/scout (Sparks)")
    stack.script(GHOST_MODEL, [LIST_DIR, *[{"reply": GHOST_REPLY}] * 3])
    before = len(stack.upstream_requests(GHOST_MODEL))
    try:
        proc = run_cn(cn, home, config, tmp_path, "What is in the workspace?")
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert GHOST_REPLY in proc.stdout
    merged_tools(stack, before)
    assert [s["tool"] for s in stack.ghost_steps("scout")][-1:] == ["list_dir"]


LLM_FUNCTION = """
def get_weather(city: str) -> str:
    "The current weather in a city."
    return f"{city}: 12C, light rain"
"""


def test_llm_functions_round_trip_through_the_scout_ghost(stack: Stack, tmp_path: Path) -> None:
    """`llm --functions`: the ghost runs list_dir itself, hands get_weather to llm, llm runs it
    and sends the result back, and the ghost's answer uses it; the second model request carries
    the ghost's own step of the first."""
    llm = find_tool("llm/bin/llm", "llm")
    if llm is None:
        skip_or_fail(f"llm is not installed: {INSTALL_HINT}")
    user_path = tmp_path / "llm"
    user_path.mkdir()
    (user_path / "extra-openai-models.yaml").write_text(
        "- model_id: sparks-scout\n"
        "  model_name: sparks/scout\n"
        f"  api_base: {stack.base_url}\n"
        "  api_key_name: sparks\n"
        "  supports_tools: true\n"
    )
    (user_path / "keys.json").write_text(json.dumps({"sparks": KEY}))
    weather = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
    stack.script(GHOST_MODEL, [LIST_DIR, weather, {"reply": "Done: {last_tool_result}"}])
    before = len(stack.upstream_requests(GHOST_MODEL))
    try:
        proc = subprocess.run(
            [llm, "-m", "sparks-scout", "--functions", LLM_FUNCTION, "Weather in Oslo?"],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            env=tool_env(tmp_path / "home", LLM_USER_PATH=str(user_path)),
            stdin=subprocess.DEVNULL,
        )
    finally:
        stack.clear_script()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Done: Oslo: 12C, light rain" in proc.stdout
    requests = stack.upstream_requests(GHOST_MODEL)[before:]
    assert len(requests) == 3
    second_turn = requests[2]["messages"]
    assert [m["role"] for m in second_turn] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert second_turn[2]["tool_calls"][0]["function"]["name"] == "list_dir"  # spliced back in
    assert second_turn[4]["tool_calls"][0]["function"]["name"] == "get_weather"
