"""Backend detection (SPEC §4.3): env keys and loopback servers answering /v1/models."""

from __future__ import annotations

from typing import Any

import pytest

from sparks.backends.detect import apply_detected, detect_backends
from sparks.config import parse_config

from .conftest import free_port


async def test_env_keys_become_hosted_backends_without_exposing_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-secret")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-secret")
    found = await detect_backends(probe_loopback=False)
    assert [(d.name, d.api_key_env) for d in found] == [
        ("openrouter", "OPENROUTER_API_KEY"),
        ("groq", "GROQ_API_KEY"),
    ]
    config = apply_detected(parse_config({}, None), found)
    assert config.backends["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert config.backends["openrouter"].api_key == ""  # only the env var name is kept


async def test_loopback_server_answering_models_is_detected_with_its_models(
    upstream: Any,
) -> None:
    dead = free_port()
    found = await detect_backends(ports=(("ollama", upstream.port), ("vllm", dead)))
    assert [d.name for d in found] == ["ollama"]
    assert found[0].base_url == f"http://127.0.0.1:{upstream.port}/v1"
    assert found[0].models == ("fake-model", "fake-small")
