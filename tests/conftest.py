"""Shared fixtures: isolated dirs and keyring, the real fake upstream, and a real Sparks app.

Every test runs with XDG config/state dirs under tmp_path and an in-memory keyring backend
(`tests/memory_keyring.py`), so nothing touches the user's machine.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import keyring
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sparks.auth import Credentials
from sparks.config import Config, parse_config
from sparks.server.app import create_app

from .memory_keyring import MemoryKeyring

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-main-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def skip_or_fail(reason: str) -> NoReturn:
    """A missing real component (bubblewrap, ripgrep, git, a client): skip on a developer's
    machine, but fail under CI=true, where .ci/run must have installed it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)  # not CI: a developer's machine may lack the component


def load_script(name: str) -> ModuleType:
    """Import a file from scripts/ (not a package) by path."""
    module_name = f"sparks_scripts_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    for var in list(__import__("os").environ):
        if var.startswith("SPARKS_") or var.endswith("_API_KEY"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ring = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def fake() -> ModuleType:
    return load_script("fake_upstream")


@pytest.fixture
async def upstream(fake: ModuleType, aiohttp_server: Any) -> TestServer:
    """The fake OpenAI upstream on a free loopback port."""
    return await aiohttp_server(fake.create_app())


def upstream_url(server: TestServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(tmp_path: Path, backends: dict[str, str] | None = None, **sections: Any) -> Config:
    """A parsed config with the given backends (name → base_url) and extra sections."""
    data: dict[str, Any] = {
        "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
    }
    data["backends"] = {name: {"base_url": url} for name, url in (backends or {}).items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data, None)


SparksFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def sparks_client(aiohttp_client: Any, tmp_path: Path) -> SparksFactory:
    """Start a real Sparks app (aiohttp test server) and return a client for it."""

    async def start(config: Config | None = None, extra_keys: list[tuple[str, str]] = ()) -> Any:
        config = config or make_config(tmp_path)
        credentials = Credentials([(API_KEY, config.openai_api.principal), *extra_keys])
        return await aiohttp_client(create_app(config, credentials))

    return start


async def post_chat(
    client: Any,
    model: str = "up/fake-model",
    *,
    stream: bool = False,
    fake: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> Any:
    """POST one chat request with the main key; `fake` steers the fake upstream."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages or [{"role": "user", "content": "hello"}],
    }
    if stream:
        body["stream"] = True
    if fake is not None:
        body["fake"] = fake
    return await client.post("/v1/chat/completions", json=body, headers=AUTH)


def read_events(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
