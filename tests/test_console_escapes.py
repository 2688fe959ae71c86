"""Nothing a client sends reaches a terminal raw (SPEC §5.2, issue 10 row 13): the serve
console and `sparks events` show control characters as escapes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sparks.cli.main import main
from sparks.config import parse_config
from sparks.observe.observer import Observer

from .conftest import AUTH, make_config, upstream_url

EVIL_PATH = "/v1/x\x1b]0;PWNED\x07\x1b[2J"


def test_the_serve_console_escapes_control_characters(tmp_path: Path) -> None:
    console = io.StringIO()
    config = parse_config({"observer": {"path": str(tmp_path / "e.jsonl")}}, None)
    observer = Observer(config.observer, console=console)
    observer.emit("request.received", path=EVIL_PATH, user_agent="ua\x1b[31m", model="m\x00")
    observer.close()
    line = console.getvalue()
    assert "\x1b" not in line and "\x07" not in line and "\x00" not in line
    assert "\\x1b]0;PWNED\\x07" in line


async def test_sparks_events_escapes_a_request_path_sent_by_a_client(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"up": upstream_url(upstream)})
    client = await sparks_client(config)
    resp = await client.get("/v1/x%1b]0;PWNED%07", headers=AUTH)
    assert resp.status == 404
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[observer]\npath = "{tmp_path / "events.jsonl"}"\n')
    result = CliRunner().invoke(main, ["events", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "PWNED" in result.output
    assert "\x1b]" not in result.output and "\x07" not in result.output
