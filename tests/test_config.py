"""Config parsing: defaults, key-path errors, inline secrets, ghosts and aliases (SPEC §2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sparks.config import ignored_cwd_config, load_config, parse_config
from sparks.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_no_file_gives_defaults_with_coder_and_scout() -> None:
    config = parse_config({}, None)
    assert config.openai_api.bind == "127.0.0.1:8787"
    assert config.openai_api.requests_per_minute == 120
    assert [g.name for g in config.ghosts] == ["coder", "scout"]
    assert next(g for g in config.ghosts if g.name == "scout").read_only


def test_unknown_key_names_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[backends.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\ntimout_s = 3\n')
    with pytest.raises(ConfigError, match=r"config.toml: backends\.ollama\.timout_s: unknown key"):
        load_config(str(path))


def test_wrong_type_names_the_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[openai_api]\nburst = "many"\n')
    with pytest.raises(ConfigError, match=r"c\.toml: openai_api\.burst: expected an integer"):
        load_config(str(path))


def test_bad_bind_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"openai_api\.bind"):
        parse_config({"openai_api": {"bind": "localhost"}}, None)


def test_inline_secret_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"backends": {"oa": {"base_url": "https://api.openai.com/v1", "api_key": "sk-x"}}}
    with pytest.raises(ConfigError, match=r"backends\.oa\.api_key: inline secrets are refused"):
        parse_config(data, None)
    monkeypatch.setenv("SPARKS_ALLOW_INLINE_SECRETS", "1")
    assert parse_config(data, None).backends["oa"].api_key == "sk-x"


def test_ghost_entry_replaces_default_whole() -> None:
    config = parse_config({"ghosts": [{"name": "scout", "description": "mine"}]}, None)
    scout = next(g for g in config.ghosts if g.name == "scout")
    assert scout.description == "mine"
    assert not scout.read_only  # the default's read_only is not merged in


def test_alias_cycle_is_a_config_error_naming_the_cycle() -> None:
    with pytest.raises(ConfigError, match="alias cycle: a -> b -> a"):
        parse_config({"aliases": {"a": ["b"], "b": ["a"]}}, None)


def test_alias_colliding_with_ghost_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="collides with ghost id"):
        parse_config({"aliases": {"sparks/coder": ["x/y"]}}, None)


def test_config_search_order_prefers_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./config.toml is read when the user config puts every writable ghost elsewhere."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.toml").write_text('[openai_api]\nprincipal = "cwd"\n')
    user_dir = tmp_path / "config" / "sparks"
    user_dir.mkdir(parents=True)
    (user_dir / "config.toml").write_text(
        f'[[ghosts]]\nname = "coder"\ndescription = "c"\nworkspace = "{tmp_path / "ws"}"\n'
        '[openai_api]\nprincipal = "user"\n'
    )
    env_file = tmp_path / "env.toml"
    env_file.write_text('[openai_api]\nprincipal = "env"\n')
    monkeypatch.chdir(project)
    assert load_config().openai_api.principal == "cwd"
    monkeypatch.setenv("SPARKS_CONFIG", str(env_file))
    assert load_config().openai_api.principal == "env"


def test_a_cwd_config_a_ghost_could_have_written_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 row 6: a ghost wrote ./config.toml (the default coder works in serve's cwd)
    setting sandbox = "none"; the next start must not read it unless --config names it."""
    (tmp_path / "config.toml").write_text('[ghost_defaults]\nsandbox = "none"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config().ghost_defaults.sandbox == "auto"
    assert "coder's writable workspace" in (ignored_cwd_config() or "")
    assert load_config("config.toml").ghost_defaults.sandbox == "none"


def test_example_config_parses_and_documents_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text()
    data = tomllib.loads(text)
    parse_config(data, ROOT / "config.example.toml")
    docs = (ROOT / "docs" / "configuration.md").read_text()
    missing = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                walk(prefix, item)
        else:
            leaf = prefix.rsplit(".", 1)[-1]
            if f"`{leaf}`" not in docs:
                missing.append(prefix)

    walk("", data)
    assert not missing, f"undocumented keys in docs/configuration.md: {missing}"
