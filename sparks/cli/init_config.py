"""The commented config.toml written by `sparks init` (data rendered with tomli-w)."""

from __future__ import annotations

from typing import Any

import tomli_w

from sparks.backends.detect import DetectedBackend
from sparks.config import DEFAULT_GHOSTS, GhostDefaults, ObserverConfig, OpenAIApiConfig

HEADER = """\
# Sparks configuration. Every key, its default and its meaning: docs/configuration.md
# (config.example.toml in the repository documents them all).
# Keys never go here: use env vars or `sparks key set [--backend NAME]`.
"""


def _section(comment: str, data: dict[str, Any]) -> str:
    return f"\n# {comment}\n" + tomli_w.dumps(data)


def render_config(detected: list[DetectedBackend]) -> str:
    api = OpenAIApiConfig()
    observer = ObserverConfig()
    defaults = GhostDefaults()
    parts = [HEADER]
    parts.append(
        _section(
            "The OpenAI-compatible endpoint. Loopback only unless `serve --allow-nonlocal`.",
            {
                "openai_api": {
                    "bind": api.bind,
                    "api_key_env": api.api_key_env,
                    "principal": api.principal,
                    "requests_per_minute": api.requests_per_minute,
                    "burst": api.burst,
                    "unknown_model": api.unknown_model,
                }
            },
        )
    )
    parts.append(
        _section(
            "The observer event log (JSON lines, 0600). Empty path: the user state dir.",
            {"observer": {"log_content": observer.log_content, "console": observer.console}},
        )
    )
    backends = {}
    for backend in detected:
        entry: dict[str, Any] = {"base_url": backend.base_url}
        if backend.api_key_env:
            entry["api_key_env"] = backend.api_key_env
        backends[backend.name] = entry
    if backends:
        parts.append(
            _section(
                "Detected backends. Models are discovered from GET {base_url}/models.",
                {"backends": backends},
            )
        )
    else:
        parts.append(
            "\n# No backend was detected. An example (or run scripts/fake_upstream.py):\n"
            '# [backends.ollama]\n# base_url = "http://127.0.0.1:11434/v1"\n'
        )
    first_model = ""
    for backend in detected:
        if backend.models:
            first_model = f"{backend.name}/{backend.models[0]}"
            break
    ghost_defaults: dict[str, Any] = {"max_steps": defaults.max_steps, "sandbox": defaults.sandbox}
    if first_model:
        ghost_defaults = {"model": first_model, **ghost_defaults}
    parts.append(_section("Defaults for every ghost.", {"ghost_defaults": ghost_defaults}))
    ghosts = [
        {
            "name": g.name,
            "description": g.description,
            "tools": list(g.tools),
            "workspace": g.workspace,
            **({"read_only": True} if g.read_only else {}),
        }
        for g in DEFAULT_GHOSTS
    ]
    parts.append(_section("Ghosts: local agents behind sparks/<name>.", {"ghosts": ghosts}))
    return "".join(parts)
