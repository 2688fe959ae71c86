"""Key sources and precedence (SPEC §3), with the in-memory keyring from conftest."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest

from sparks import keys
from sparks.auth import Credentials, presented_key
from sparks.config import parse_config

from .memory_keyring import MemoryKeyring


def test_env_wins_over_keyring_wins_over_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated_home: MemoryKeyring
) -> None:
    config = parse_config({}, None)
    key_file = tmp_path / "config" / "sparks" / "api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("from-file\n")
    key_file.chmod(0o600)
    assert keys.find_main_key(config).key == "from-file"
    isolated_home.set_password("sparks", "openai_api", "from-keyring")
    assert keys.find_main_key(config).key == "from-keyring"
    monkeypatch.setenv("SPARKS_OPENAI_API_KEY", "from-env")
    found = keys.find_main_key(config)
    assert found.key == "from-env" and found.source == "env SPARKS_OPENAI_API_KEY"


def test_generated_key_goes_to_keyring_when_usable(isolated_home: MemoryKeyring) -> None:
    resolved, generated = keys.ensure_main_key(parse_config({}, None))
    assert generated and resolved.source.startswith("keyring")
    assert isolated_home.get_password("sparks", "openai_api") == resolved.key
    assert len(resolved.key) >= 43 and resolved.key.startswith("sk-sparks-")
    again, generated_again = keys.ensure_main_key(parse_config({}, None))
    assert again.key == resolved.key and not generated_again


def test_generated_key_falls_back_to_0600_file_without_keyring(tmp_path: Path) -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    resolved, generated = keys.ensure_main_key(parse_config({}, None))
    path = tmp_path / "config" / "sparks" / "api_key"
    assert generated and resolved.source == f"key file {path}"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == resolved.key


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    path = tmp_path / "config" / "sparks" / "api_key"
    path.parent.mkdir(parents=True)
    path.write_text("leaky")
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        keys.find_main_key(parse_config({}, None))


def test_client_keys_authenticate_as_their_principal() -> None:
    keys.store_client_key("cursor", "sk-cursor-1")
    keys.store_client_key("continue", "sk-continue-1")
    found = {c.principal: c.key for c in keys.client_keys()}
    assert found == {"cursor": "sk-cursor-1", "continue": "sk-continue-1"}
    creds = Credentials([("main", "self"), *((c.key, c.principal) for c in keys.client_keys())])
    assert creds.principal_for("sk-cursor-1") == "cursor"
    assert creds.principal_for("main") == "self"
    assert creds.principal_for("sk-cursor-") is None and creds.principal_for(None) is None
    assert keys.delete_client_key("cursor") == ["keyring"]
    assert [c.principal for c in keys.client_keys()] == ["continue"]


def test_backend_key_status_present_missing_not_required(
    monkeypatch: pytest.MonkeyPatch, isolated_home: MemoryKeyring
) -> None:
    config = parse_config(
        {
            "backends": {
                "oa": {"base_url": "https://api.openai.com/v1", "api_key_env": "OA_KEY"},
                "local": {"base_url": "http://127.0.0.1:11434/v1"},
                "kr": {"base_url": "https://openrouter.ai/api/v1"},
            }
        },
        None,
    )
    assert keys.backend_key_status(config.backends["oa"]) == "missing"
    monkeypatch.setenv("OA_KEY", "sk-oa")
    assert keys.backend_key_status(config.backends["oa"]) == "present"
    assert keys.backend_key_status(config.backends["local"]) == "not_required"
    isolated_home.set_password("sparks", "backend:kr", "sk-or")
    assert keys.backend_key_status(config.backends["kr"]) == "present"
    assert keys.find_backend_key(config.backends["kr"]).key == "sk-or"


def test_presented_key_reads_bearer_or_x_api_key() -> None:
    assert presented_key({"Authorization": "Bearer abc"}) == "abc"
    assert presented_key({"Authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({"Authorization": "Basic abc"}) is None
    assert presented_key({}) is None
