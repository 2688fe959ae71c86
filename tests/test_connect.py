"""`sparks connect TOOL`: each snippet parses, carries the model list and limits, hides the key."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from sparks import keys
from sparks.cli.connect import TOOLS, base_url_for, connect
from sparks.config import parse_config

KEY = "sk-connect-test-key-0123456789abcdef0123"
AGENT_MODELS = ["fast", "local/qwen3:8b", "local/tiny"]
GHOSTS = ["sparks", "sparks/coder", "sparks/scout"]

CONFIG = """\
[openai_api]
bind = "127.0.0.1:8899"
[observer]
path = "{events}"
console = false
[backends.local]
base_url = "http://127.0.0.1:9/v1"
models = ["qwen3:8b", "tiny"]
[backends.local.model_info."qwen3:8b"]
context_length = 32768
[aliases]
fast = ["local/qwen3:8b"]
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """Static model lists: nothing is discovered, so no network is needed."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(events=tmp_path / "events.jsonl"))
    return path


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPARKS_OPENAI_API_KEY", KEY)
    return KEY


def run(*args: str) -> Result:
    return CliRunner().invoke(connect, list(args), catch_exceptions=False)


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("tool", TOOLS)
def test_key_is_absent_without_show_key_and_present_with_it(
    tool: str, config_path: Path, with_key: str
) -> None:
    hidden = ok(tool, "--config", str(config_path))
    assert with_key not in hidden.output  # stdout and stderr
    assert with_key in ok(tool, "--config", str(config_path), "--show-key").stdout


def test_opencode_is_a_json_provider_config_with_limits(config_path: Path, with_key: str) -> None:
    result = ok("opencode", "--config", str(config_path))
    document = json.loads(result.stdout)
    provider = document["provider"]["sparks"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {
        "baseURL": "http://127.0.0.1:8899/v1",
        "apiKey": "{env:SPARKS_API_KEY}",
    }
    assert list(provider["models"]) == AGENT_MODELS + GHOSTS  # plain models first
    assert provider["models"]["local/qwen3:8b"] == {
        "name": "local/qwen3:8b",
        "limit": {"context": 32768, "output": 8192},
    }
    assert provider["models"]["fast"]["limit"]["context"] == 32768  # from the alias's target
    assert "limit" not in provider["models"]["local/tiny"]
    assert document["model"] == "sparks/fast"
    assert 'export SPARKS_API_KEY="$(sparks key show --config' in result.stderr

    shown = json.loads(ok("opencode", "--config", str(config_path), "--show-key").stdout)
    assert shown["provider"]["sparks"]["options"]["apiKey"] == with_key


def test_continue_is_yaml_with_context_lengths(config_path: Path, with_key: str) -> None:
    document = yaml.safe_load(ok("continue", "--config", str(config_path)).stdout)
    assert document["schema"] == "v1"
    models = {m["model"]: m for m in document["models"]}
    assert list(models) == AGENT_MODELS + GHOSTS  # `cn -p` uses the first
    qwen = models["local/qwen3:8b"]
    assert qwen["provider"] == "openai"
    assert qwen["apiBase"] == "http://127.0.0.1:8899/v1"
    assert qwen["apiKey"] == "${{ secrets.SPARKS_API_KEY }}"
    assert qwen["defaultCompletionOptions"] == {"contextLength": 32768}
    assert qwen["roles"] == ["chat", "edit", "apply"]
    assert models["sparks/coder"]["roles"] == ["chat"]
    assert models["sparks/coder"]["capabilities"] == ["tool_use"]  # it merges the agent's tools
    assert "defaultCompletionOptions" not in models["local/tiny"]

    shown = yaml.safe_load(ok("continue", "--config", str(config_path), "--show-key").stdout)
    assert {m["apiKey"] for m in shown["models"]} == {with_key}


def test_aider_exports_base_and_key_and_writes_model_metadata(
    config_path: Path, with_key: str
) -> None:
    text = ok("aider", "--config", str(config_path)).stdout
    assert "export OPENAI_API_BASE=http://127.0.0.1:8899/v1" in text
    assert f'export OPENAI_API_KEY="$(sparks key show --config {config_path})"' in text
    assert "aider --model openai/fast" in text
    metadata = json.loads(re.search(r"<<'EOF'\n(.*?)\nEOF", text, re.S)[1])
    assert set(metadata) == {"openai/fast", "openai/local/qwen3:8b"}  # known contexts only
    assert metadata["openai/local/qwen3:8b"]["max_input_tokens"] == 32768
    assert metadata["openai/local/qwen3:8b"]["litellm_provider"] == "openai"


def test_cline_lists_the_settings_to_enter(config_path: Path, with_key: str) -> None:
    text = ok("cline", "--config", str(config_path)).stdout
    assert "API Provider:  OpenAI Compatible" in text
    assert "Base URL:      http://127.0.0.1:8899/v1" in text
    assert "Model ID:      fast" in text
    assert "local/qwen3:8b: Context Window Size 32768" in text
    assert f"`sparks key show --config {config_path}`" in text


def test_cursor_explains_why_loopback_is_unreachable(config_path: Path, with_key: str) -> None:
    text = ok("cursor", "--config", str(config_path)).stdout
    assert "its own servers" in text and "tunnel" in text
    assert "Override OpenAI Base URL:  https://<your-tunnel-host>/v1" in text
    assert "sparks key generate --client cursor" in text
    tunnel = ok("cursor", "--config", str(config_path), "--base-url", "https://t.example/v1/")
    assert "Override OpenAI Base URL:  https://t.example/v1\n" in tunnel.stdout


def test_env_output_evaluates_in_a_shell(config_path: Path, with_key: str) -> None:
    hidden = ok("env", "--config", str(config_path)).stdout
    assert f'export OPENAI_API_KEY="$(sparks key show --config {config_path})"' in hidden
    shown = ok("env", "--config", str(config_path), "--show-key").stdout
    probe = subprocess.run(
        ["bash", "-c", shown + '\nprintf "%s %s" "$OPENAI_BASE_URL" "$OPENAI_API_KEY"'],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert probe.stdout == f"http://127.0.0.1:8899/v1 {with_key}"


def test_base_url_option_overrides_bind(config_path: Path) -> None:
    text = ok("env", "--config", str(config_path), "--base-url", "http://[::1]:9000/v1/").stdout
    assert "export OPENAI_BASE_URL='http://[::1]:9000/v1'\n" in text  # quoted for the shell


def test_base_url_from_bind_handles_ipv6_and_wildcards(tmp_path: Path) -> None:
    def url(bind: str) -> str:
        return base_url_for(parse_config({"openai_api": {"bind": bind}}, None))

    assert url("127.0.0.1:8787") == "http://127.0.0.1:8787/v1"
    assert url("[::1]:8787") == "http://[::1]:8787/v1"
    assert url("0.0.0.0:8787") == "http://127.0.0.1:8787/v1"


def test_show_key_reads_the_keyring_too(config_path: Path) -> None:
    keys.store_main_key(KEY)  # the in-memory keyring from conftest
    assert KEY in ok("opencode", "--config", str(config_path), "--show-key").stdout


def test_show_key_without_any_key_exits_1(config_path: Path) -> None:
    result = run("env", "--config", str(config_path), "--show-key")
    assert result.exit_code == 1
    assert "no key yet" in result.stderr


def test_unknown_tool_is_a_usage_error(config_path: Path) -> None:
    result = run("vim", "--config", str(config_path))
    assert result.exit_code == 2
    assert "opencode" in result.output


def test_no_backend_models_warns(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('[backends.none]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = []\n')
    result = ok("opencode", "--config", str(path))
    assert list(json.loads(result.stdout)["provider"]["sparks"]["models"]) == GHOSTS
    assert "no backend models" in result.stderr


def test_unreachable_backend_is_named_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "down.toml"
    path.write_text('[backends.down]\nbase_url = "http://127.0.0.1:9/v1"\n')  # discovery fails
    result = ok("env", "--config", str(path))
    assert "export OPENAI_BASE_URL=" in result.stdout
    assert "backend down:" in result.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_every_snippet_puts_a_plain_model_first_and_ghosts_after(
    tool: str, config_path: Path, with_key: str
) -> None:
    text = ok(tool, "--config", str(config_path)).stdout
    first_plain = min(text.index(m) for m in AGENT_MODELS if m in text)
    ghost_mentions = [text.index(g) for g in ("sparks/coder", "sparks/scout") if g in text]
    assert ghost_mentions, f"{tool}: ghosts are missing"
    assert first_plain < min(ghost_mentions), f"{tool}: a ghost comes before the plain models"
    for line in text.splitlines():  # and within every listing
        plain = [line.index(m) for m in AGENT_MODELS if m in line]
        ghosts = [line.index(g) for g in ("sparks/coder", "sparks/scout") if g in line]
        if plain and ghosts:
            assert max(plain) < min(ghosts), f"{tool}: {line!r}"


def test_a_ghost_that_rejects_client_tools_is_left_out_of_agent_snippets(
    config_path: Path, with_key: str
) -> None:
    config_path.write_text(
        config_path.read_text() + '[[ghosts]]\nname = "strict"\nclient_tools = "reject"\n'
    )
    models = json.loads(ok("opencode", "--config", str(config_path)).stdout)["provider"]
    assert list(models["sparks"]["models"]) == [*AGENT_MODELS, "sparks/coder", "sparks/scout"]
    document = yaml.safe_load(ok("continue", "--config", str(config_path)).stdout)
    strict = next(m for m in document["models"] if m["model"] == "sparks/strict")
    assert "capabilities" not in strict  # listed for chat, without tool use


def test_litellm_model_metadata_reaches_the_snippets() -> None:
    """LiteLLM-style discovery fields (max_input_tokens, max_output_tokens, also under
    model_info) become context limits in the snippets (SPEC §4.5)."""
    from sparks.backends.catalog import Catalog
    from sparks.cli.connect import Connection, client_models, render_opencode

    config = parse_config({"backends": {"lite": {"base_url": "http://127.0.0.1:9/v1"}}}, None)
    catalog = Catalog(config)
    catalog.discovered["lite"] = {
        "gpt-x": {"id": "gpt-x", "max_input_tokens": 128000, "max_output_tokens": 4096},
        "claude-y": {"id": "claude-y", "model_info": {"max_input_tokens": 200000}},
    }
    catalog.models["lite"] = ("gpt-x", "claude-y")
    catalog.table = type(catalog.table)(config, catalog.models)
    conn = Connection("http://127.0.0.1:8787/v1", client_models(catalog.entries(), config))
    models = json.loads(render_opencode(conn)[0])["provider"]["sparks"]["models"]
    assert models["lite/gpt-x"]["limit"] == {"context": 128000, "output": 4096}
    assert models["lite/claude-y"]["limit"] == {"context": 200000, "output": 8192}
