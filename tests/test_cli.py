"""The `sparks` CLI in-process (click's CliRunner), with the in-memory keyring from conftest."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from sparks.cli.main import main
from sparks.config import parse_config

from .conftest import free_port
from .memory_keyring import MemoryKeyring


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


STATIC = """
[backends.up]
base_url = "http://127.0.0.1:{port}/v1"
models = ["alpha", "beta"]
[backends.up.model_info.alpha]
context_length = 8192
[backends.far]
base_url = "https://api.example.invalid/v1"
models = ["beta", "gamma"]
[aliases]
fast = ["up/alpha", "far/gamma"]
"""


def static_config(tmp_path: Path) -> str:
    return write(tmp_path, STATIC.format(port=free_port()))


def test_key_generate_show_where_delete(isolated_home: MemoryKeyring, tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = static_config(tmp_path)
    generated = runner.invoke(main, ["key", "generate", "--config", cfg])
    assert generated.exit_code == 0
    key = generated.stdout.strip().splitlines()[0]
    assert key.startswith("sk-sparks-")
    shown = runner.invoke(main, ["key", "show", "--config", cfg])
    assert shown.stdout.strip() == key
    where = runner.invoke(main, ["key", "where", "--config", cfg])
    assert "keyring" in where.stdout and key not in where.stdout
    client = runner.invoke(main, ["key", "generate", "--client", "cursor", "--config", cfg])
    assert client.exit_code == 0
    assert "client keys: cursor" in runner.invoke(main, ["key", "where", "--config", cfg]).stdout
    deleted = runner.invoke(main, ["key", "delete", "--config", cfg])
    assert deleted.exit_code == 0 and "keyring" in deleted.stdout
    assert runner.invoke(main, ["key", "show", "--config", cfg]).exit_code == 1


def test_key_set_backend_reads_stdin(isolated_home: MemoryKeyring, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["key", "set", "--backend", "far", "--config", static_config(tmp_path)],
        input="sk-far-secret\n",
    )
    assert result.exit_code == 0 and "sk-far-secret" not in result.stdout
    assert isolated_home.get_password("sparks", "backend:far") == "sk-far-secret"


def test_models_json_lists_ids_with_metadata(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["models", "--json", "--config", static_config(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    ids = [m["id"] for m in data]
    assert ids == [
        "sparks",
        "sparks/coder",
        "sparks/scout",
        "fast",
        "up/alpha",
        "up/beta",
        "far/beta",
        "far/gamma",
    ]
    alpha = next(m for m in data if m["id"] == "up/alpha")
    assert alpha["context_length"] == 8192 and alpha["sparks"]["local"] is True
    assert next(m for m in data if m["id"] == "far/gamma")["sparks"]["local"] is False


def test_route_dry_run_explains_each_kind(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = static_config(tmp_path)
    alias = runner.invoke(main, ["route", "fast", "--config", cfg])
    assert "alias:fast" in alias.stdout and "1. up/alpha" in alias.stdout
    assert "2. far/gamma" in alias.stdout
    direct = json.loads(
        runner.invoke(main, ["route", "far/some/deep/model", "--json", "--config", cfg]).stdout
    )
    assert direct["chain"][0]["backend"] == "far"
    assert direct["chain"][0]["upstream_model"] == "some/deep/model"
    assert "gamma" in runner.invoke(main, ["route", "gamma", "--config", cfg]).stdout
    ambiguous = runner.invoke(main, ["route", "beta", "--config", cfg])
    assert "classify" in ambiguous.stdout  # served by two backends: not a unique bare id
    local = runner.invoke(main, ["route", "fast:local", "--json", "--config", cfg])
    assert [s["target"] for s in json.loads(local.stdout)["chain"]] == ["up/alpha"]
    missing = runner.invoke(main, ["route", "sparks/nope", "--config", cfg])
    assert missing.exit_code == 1 and "model_not_found" in missing.stdout


def test_ghosts_lists_defaults(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ghosts", "--config", static_config(tmp_path)])
    assert result.exit_code == 0
    assert "sparks/coder" in result.stdout and "sparks/scout" in result.stdout
    assert "(read-only)" in result.stdout


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[observer]\nbackups = -1\n")
    result = CliRunner().invoke(main, ["models", "--config", cfg])
    assert result.exit_code == 2
    assert "observer.backups: must not be negative" in result.stderr


def test_init_writes_a_config_that_parses_and_ensures_a_key(
    isolated_home: MemoryKeyring, tmp_path: Path
) -> None:
    target = tmp_path / "new" / "config.toml"
    result = CliRunner().invoke(main, ["init", "--path", str(target)])
    assert result.exit_code == 0, result.output
    parse_config(tomllib.loads(target.read_text()), target)
    assert target.read_text().startswith("# Sparks configuration")
    assert isolated_home.get_password("sparks", "openai_api")
    again = CliRunner().invoke(main, ["init", "--path", str(target)])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_doctor_reports_each_check_and_fails_on_unreachable_backend(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        f'[openai_api]\nbind = "127.0.0.1:{free_port()}"\n'
        f'[backends.dead]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n',
    )
    result = CliRunner().invoke(main, ["doctor", "--json", "--config", cfg])
    assert result.exit_code == 1
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["config"]["ok"] and checks["port"]["ok"]
    assert not checks["backend dead"]["ok"]
    assert "sandbox" in checks["ghost coder"]["detail"]


def test_doctor_probes_a_backend_whose_models_are_listed_in_config(tmp_path: Path) -> None:
    """A static model list is no proof of life: the backend is probed and fails the check."""
    cfg = write(
        tmp_path,
        f'[openai_api]\nbind = "127.0.0.1:{free_port()}"\n'
        f'[backends.dead]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\nmodels = ["m"]\n',
    )
    result = CliRunner().invoke(main, ["doctor", "--json", "--config", cfg])
    assert result.exit_code == 1
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert not checks["backend dead"]["ok"]
    assert "models" not in checks["backend dead"]["detail"].split(":")[-1]


def test_key_where_on_a_key_file_readable_by_others_is_a_clear_exit_2(
    isolated_home: MemoryKeyring, tmp_path: Path
) -> None:
    """Issue 10 row 20: it printed a traceback."""
    from sparks.keys import key_file_path

    path = key_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sk-file-key-0123456789abcdef0123456789\n")
    path.chmod(0o640)
    result = CliRunner().invoke(main, ["key", "where", "--config", static_config(tmp_path)])
    assert result.exit_code == 2
    assert "chmod 600" in result.stderr and "Traceback" not in result.output
    assert "sk-file-key" not in result.output
