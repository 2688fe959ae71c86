"""Backend detection (SPEC §4.3): hosted keys in the environment and loopback servers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import types
from dataclasses import dataclass

import aiohttp

from sparks.config import BackendConfig, Config

PROBE_TIMEOUT_S = 0.3

HOSTED = (
    ("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    ("openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    ("groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1"),
)
LOOPBACK = (
    ("ollama", 11434),
    ("lmstudio", 1234),
    ("llamacpp", 8080),
    ("vllm", 8000),
)


@dataclass(frozen=True)
class DetectedBackend:
    name: str
    base_url: str
    api_key_env: str = ""
    models: tuple[str, ...] = ()


async def _probe(session: aiohttp.ClientSession, name: str, port: int) -> DetectedBackend | None:
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        async with session.get(base_url + "/models") as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    models = tuple(str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e)
    return DetectedBackend(name, base_url, models=models)


async def detect_backends(
    probe_loopback: bool = True, ports: tuple[tuple[str, int], ...] = LOOPBACK
) -> list[DetectedBackend]:
    """Hosted backends whose key is in the env, then loopback servers answering /v1/models
    within PROBE_TIMEOUT_S (all ports probed at once)."""
    found = [
        DetectedBackend(name, url, api_key_env=env)
        for name, env, url in HOSTED
        if os.environ.get(env)
    ]
    if probe_loopback:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            probes = await asyncio.gather(*(_probe(session, n, p) for n, p in ports))
        found += [p for p in probes if p is not None]
    return found


def apply_detected(config: Config, detected: list[DetectedBackend]) -> Config:
    """A config whose (empty) backend table is filled with what detection found."""
    backends = {
        d.name: BackendConfig(
            name=d.name,
            base_url=d.base_url,
            api_key_env=d.api_key_env,
            models=d.models or None,
        )
        for d in detected
    }
    return dataclasses.replace(config, backends=types.MappingProxyType(backends))
