"""Key sources (SPEC §3): env var → OS keyring → 0600 key file; generation; client and backend keys.

Nothing here logs a key or hands one to HTTP; callers get `ResolvedKey.source` to show users.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors

from sparks.config import BackendConfig, Config, default_config_dir

SERVICE = "sparks"
MAIN_USER = "openai_api"
CLIENTS_USER = "clients"  # keyring entry holding the JSON list of client names (not keys)
KEY_FILE = "api_key"
CLIENT_KEY_FILE = "client_keys.json"


@dataclass(frozen=True)
class ResolvedKey:
    key: str
    source: str  # human-readable, e.g. "env SPARKS_OPENAI_API_KEY", "keyring (keyring.backends…)"


@dataclass(frozen=True)
class ClientKey:
    principal: str
    key: str


def generate_key() -> str:
    """32 random bytes, urlsafe; the `sk-sparks-` prefix lets secret scanners recognise it."""
    return "sk-sparks-" + secrets.token_urlsafe(32)


def keyring_backend_name() -> str:
    kr = keyring.get_keyring()
    return f"{type(kr).__module__}.{type(kr).__name__}"


def keyring_usable() -> bool:
    """True when the active keyring backend can store secrets (not the `fail` backend)."""
    kr = keyring.get_keyring()
    try:
        priority = kr.priority  # type: ignore[attr-defined]
    except Exception:
        return False
    name = type(kr).__module__
    return priority > 0 and "fail" not in name and "null" not in name


def _keyring_get(user: str) -> str | None:
    if not keyring_usable():
        return None
    try:
        return keyring.get_password(SERVICE, user)
    except keyring.errors.KeyringError:
        return None


def _keyring_set(user: str, value: str) -> bool:
    if not keyring_usable():
        return False
    try:
        keyring.set_password(SERVICE, user, value)
    except keyring.errors.KeyringError:
        return False
    return True


def _keyring_delete(user: str) -> bool:
    if not keyring_usable():
        return False
    try:
        keyring.delete_password(SERVICE, user)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError:
        return False
    return True


def key_file_path() -> Path:
    return default_config_dir() / KEY_FILE


def _write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner, creating it 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_key_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise PermissionError(
            f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    text = path.read_text(encoding="utf-8").strip()
    return text or None


def find_main_key(config: Config) -> ResolvedKey | None:
    """The first hit among the env var, the keyring and the key file; None when there is none."""
    api = config.openai_api
    if api.api_key:
        return ResolvedKey(api.api_key, f"inline openai_api.api_key in {config.source}")
    if api.api_key_env and os.environ.get(api.api_key_env):
        return ResolvedKey(os.environ[api.api_key_env], f"env {api.api_key_env}")
    stored = _keyring_get(MAIN_USER)
    if stored:
        return ResolvedKey(stored, f"keyring ({keyring_backend_name()}, service {SERVICE!r})")
    path = key_file_path()
    from_file = _read_key_file(path)
    if from_file:
        return ResolvedKey(from_file, f"key file {path}")
    return None


def store_main_key(key: str) -> str:
    """Store in the keyring if usable, else the 0600 key file; return where it went."""
    if _keyring_set(MAIN_USER, key):
        return f"keyring ({keyring_backend_name()}, service {SERVICE!r})"
    path = key_file_path()
    _write_private(path, key + "\n")
    return f"key file {path}"


def ensure_main_key(config: Config) -> tuple[ResolvedKey, bool]:
    """The key in effect, generating and storing one when none exists; (key, was_generated)."""
    found = find_main_key(config)
    if found:
        return found, False
    key = generate_key()
    return ResolvedKey(key, store_main_key(key)), True


def delete_main_key() -> list[str]:
    """Remove the stored main key from the keyring and the key file; return what was removed."""
    removed = []
    if _keyring_delete(MAIN_USER):
        removed.append("keyring")
    path = key_file_path()
    if path.exists():
        path.unlink()
        removed.append(f"key file {path}")
    return removed


# --- named client keys -------------------------------------------------------------------


def _client_file() -> Path:
    return default_config_dir() / CLIENT_KEY_FILE


def _load_client_file() -> dict[str, str]:
    path = _client_file()
    if not path.exists():
        return {}
    _read_key_file(path)  # permission check
    data = json.loads(path.read_text(encoding="utf-8") or "{}")
    return {str(k): str(v) for k, v in data.items()}


def client_names() -> list[str]:
    names = set(_load_client_file())
    listed = _keyring_get(CLIENTS_USER)
    if listed:
        names.update(json.loads(listed))
    return sorted(names)


def client_keys() -> list[ClientKey]:
    """Every named client key, from the keyring or the client key file."""
    in_file = _load_client_file()
    found = []
    for name in client_names():
        key = _keyring_get(f"client:{name}") or in_file.get(name)
        if key:
            found.append(ClientKey(name, key))
    return found


def store_client_key(name: str, key: str) -> str:
    if _keyring_set(f"client:{name}", key):
        names = set(json.loads(_keyring_get(CLIENTS_USER) or "[]")) | {name}
        _keyring_set(CLIENTS_USER, json.dumps(sorted(names)))
        return f"keyring ({keyring_backend_name()}, user 'client:{name}')"
    data = _load_client_file()
    data[name] = key
    _write_private(_client_file(), json.dumps(data, indent=2))
    return f"key file {_client_file()}"


def find_client_key(name: str) -> ResolvedKey | None:
    key = _keyring_get(f"client:{name}")
    if key:
        return ResolvedKey(key, f"keyring (user 'client:{name}')")
    key = _load_client_file().get(name)
    return ResolvedKey(key, f"key file {_client_file()}") if key else None


def delete_client_key(name: str) -> list[str]:
    removed = []
    if _keyring_delete(f"client:{name}"):
        removed.append("keyring")
        names = set(json.loads(_keyring_get(CLIENTS_USER) or "[]")) - {name}
        _keyring_set(CLIENTS_USER, json.dumps(sorted(names)))
    data = _load_client_file()
    if name in data:
        del data[name]
        _write_private(_client_file(), json.dumps(data, indent=2))
        removed.append(f"key file {_client_file()}")
    return removed


# --- backend keys ------------------------------------------------------------------------


def find_backend_key(backend: BackendConfig) -> ResolvedKey | None:
    """The backend's `api_key_env`, else keyring user `backend:NAME`; None → not required."""
    if backend.api_key:
        return ResolvedKey(backend.api_key, f"inline backends.{backend.name}.api_key")
    if backend.api_key_env and os.environ.get(backend.api_key_env):
        return ResolvedKey(os.environ[backend.api_key_env], f"env {backend.api_key_env}")
    stored = _keyring_get(f"backend:{backend.name}")
    return ResolvedKey(stored, f"keyring (user 'backend:{backend.name}')") if stored else None


def backend_key_status(backend: BackendConfig) -> str:
    """`present`, `missing` (configured but absent) or `not_required` (SPEC §3)."""
    if find_backend_key(backend):
        return "present"
    return "missing" if backend.api_key_env else "not_required"


def store_backend_key(name: str, key: str) -> str:
    if not _keyring_set(f"backend:{name}", key):
        raise RuntimeError(
            "no usable OS keyring to store a backend key; set the backend's api_key_env instead"
        )
    return f"keyring (user 'backend:{name}')"


def delete_backend_key(name: str) -> list[str]:
    return ["keyring"] if _keyring_delete(f"backend:{name}") else []
