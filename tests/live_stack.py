"""A live stack for the real-client tests: the fake upstream and `sparks serve` as real
subprocesses on free loopback ports, with a config and an event log of their own."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import ROOT, free_port, read_events
from .test_serve_subprocess import child_env, read_line_with, stop

# Proxies that point at the discard port: a client that tries to reach the internet fails fast.
OFFLINE = {
    name: "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")
} | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass(frozen=True)
class LiveStack:
    root: str  # the daemon's root URL (Claude Code's ANTHROPIC_BASE_URL)
    upstream: str  # the fake upstream's /v1 URL
    config: Path
    events: Path

    @property
    def base_url(self) -> str:
        """The OpenAI base URL clients use."""
        return self.root + "/v1"

    def script(self, model: str, turns: list[dict[str, Any]]) -> None:
        """Queue fake-upstream answers for `model` (see scripts/fake_upstream.py)."""
        body = json.dumps({"model": model, "turns": turns}).encode()
        request = urllib.request.Request(self._fake("/_fake/script"), body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def clear_script(self) -> None:
        request = urllib.request.Request(self._fake("/_fake/script"), method="DELETE")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def upstream_requests(self, model: str) -> list[dict[str, Any]]:
        """Chat request bodies the fake upstream received for `model`."""
        with urllib.request.urlopen(self._fake("/_fake/requests"), timeout=5) as response:
            records = json.loads(response.read())
        return [
            r["json"]
            for r in records
            if r["path"].endswith("/chat/completions") and (r["json"] or {}).get("model") == model
        ]

    def ghost_steps(self, ghost: str) -> list[dict[str, Any]]:
        return [
            e
            for e in read_events(self.events)
            if e["event"] == "ghost.step" and e["ghost"] == ghost
        ]

    def _fake(self, path: str) -> str:
        return self.upstream.removesuffix("/v1") + path


@contextmanager
def live_stack(
    home: Path,
    key: str,
    *,
    config_tail: str = "",
    backend: str = "up",
    fake_args: Sequence[str] = (),
    cls: type[LiveStack] = LiveStack,
) -> Iterator[Any]:
    """Start both, wait for the banner, yield the stack, stop both (bounded)."""
    workspace = home / "ws"  # serve's cwd, the default ghosts' workspace: apart from its files
    workspace.mkdir(exist_ok=True)
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0", *fake_args],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(home),
    )
    serve = None
    try:
        upstream = read_line_with(fake, "listening on")[-1].rsplit(" ", 1)[-1].strip()
        port = free_port()
        config, events = home / "config.toml", home / "events.jsonl"
        config.write_text(
            f'[openai_api]\nbind = "127.0.0.1:{port}"\n'
            f'[observer]\npath = "{events}"\nconsole = false\n'
            f'[backends.{backend}]\nbase_url = "{upstream}"\n' + config_tail
        )
        with open(home / "serve.stderr", "w") as stderr:  # a file: a full pipe would stall it
            serve = subprocess.Popen(
                [sys.executable, "-m", "sparks", "serve", "--config", str(config)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=workspace,
                env=child_env(home, SPARKS_OPENAI_API_KEY=key),
            )
        read_line_with(serve, "events:")
        yield cls(f"http://127.0.0.1:{port}", upstream, config, events)
    finally:
        if serve is not None:
            stop(serve)
        stop(fake)
