"""`sparks events` and `sparks activity` through click, on logs written like the observer's."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from sparks.cli.activity import activity, errors_text
from sparks.cli.events import StoryPrinter, events, show_events
from sparks.observe.event_log import EventFilter

from .test_event_log import event_line

RECENT = datetime.now(UTC) - timedelta(minutes=5)


def at(seconds: float) -> datetime:
    return RECENT + timedelta(seconds=seconds)


def story_log() -> list[str]:
    """Two interleaved requests (r-one finishes last) and the server's own events."""
    return [
        event_line("server.started", at(0), bind="127.0.0.1:8787", version="0.1.0"),
        event_line(
            "request.received",
            at(1),
            "req_one00001",
            method="POST",
            path="/v1/chat/completions",
            principal="self",
            model="sparks",
            stream=True,
        ),
        event_line(
            "request.received",
            at(1.5),
            "req_two00002",
            method="POST",
            path="/v1/chat/completions",
            principal="cursor",
            model="ollama/qwen3:8b",
            stream=False,
        ),
        event_line(
            "route.resolved",
            at(1.6),
            "req_one00001",
            kind="classify",
            target="sparks/coder",
            ghost="coder",
            classifier={"method": "keyword", "latency_ms": 0.4},
        ),
        event_line(
            "upstream.attempt",
            at(2),
            "req_two00002",
            backend="ollama",
            upstream_model="qwen3:8b",
            attempt=1,
            status=200,
            latency_ms=812.4,
            error=None,
        ),
        event_line(
            "ghost.step",
            at(2.5),
            "req_one00001",
            ghost="coder",
            step=1,
            tool="read_file",
            args_summary="path=README.md",
            ok=True,
            duration_ms=3.2,
        ),
        event_line(
            "request.completed",
            at(3),
            "req_two00002",
            status=200,
            latency_ms=1500.0,
            ttft_ms=None,
            served_model="ollama/qwen3:8b",
            fallback_from=None,
            usage={"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            cost=0.0015,
        ),
        event_line(
            "request.failed",
            at(4),
            "req_one00001",
            status=502,
            code="upstream_error",
            error="ollama/qwen3:8b: HTTP 500",
            latency_ms=3000.0,
        ),
        event_line("server.stopped", at(5), bind="127.0.0.1:8787"),
    ]


@pytest.fixture
def log_config(tmp_path: Path) -> tuple[Path, Path]:
    """(config file, log path) with the story log written."""
    log = tmp_path / "events.jsonl"
    log.write_text("".join(story_log()))
    config = tmp_path / "config.toml"
    config.write_text(f'[observer]\npath = "{log}"\n')
    return config, log


def run(command: Any, *args: str) -> Any:
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def test_pretty_output_tells_each_request_as_one_story(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    result = run(events, "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert "server.started" in out[0] and "bind=127.0.0.1:8787" in out[0]
    two = next(i for i, line in enumerate(out) if "req_two00002" in line)
    one = next(i for i, line in enumerate(out) if "req_one00001" in line)
    assert 0 < two < one  # req_two finished first, so its story comes first
    assert "POST /v1/chat/completions  cursor  ollama/qwen3:8b" in out[two]
    assert out[two + 1].split()[:4] == ["upstream", "#1", "ollama/qwen3:8b", "200"]
    completed = out[two + 2]
    assert completed.startswith("  completed")
    for fragment in ("1500 ms", "tokens 120 in / 30 out", "$0.0015"):
        assert fragment in completed
    assert "self  sparks  stream" in out[one]
    assert out[one + 1].split()[:4] == ["route", "classify", "→", "sparks/coder"]
    assert "classifier keyword 0.4 ms" in out[one + 1]
    assert out[one + 2].split()[:5] == ["step", "1", "read_file", "path=README.md", "ok"]
    assert out[one + 3].split()[:4] == ["failed", "502", "upstream_error", "3000"]
    assert "server.stopped" in out[one + 4]
    assert len(out) == one + 5
    assert "\x1b[" not in result.stdout  # no colors when not on a terminal


def test_json_passes_the_log_lines_through_unchanged(log_config: tuple[Path, Path]) -> None:
    config, log = log_config
    result = run(events, "--config", str(config), "--json", "--event", "request.*")
    assert result.exit_code == 0
    expected = [line for line in log.read_text().splitlines() if '"event":"request.' in line]
    assert result.stdout.splitlines() == expected
    assert all(json.loads(line)["event"].startswith("request.") for line in expected)


def test_request_id_filter_accepts_the_tail(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    result = run(events, "--config", str(config), "--request-id", "two00002", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event"] for r in records] == [
        "request.received",
        "upstream.attempt",
        "request.completed",
    ]
    assert {r["request_id"] for r in records} == {"req_two00002"}


def test_since_filters_and_a_bad_since_is_a_usage_error(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    result = run(events, "--config", str(config), "--since", "1m", "--json")
    assert (result.exit_code, result.stdout) == (0, "")
    bad = run(events, "--config", str(config), "--since", "lately")
    assert bad.exit_code == 2
    assert "--since" in bad.output and "30s, 10m, 2h, 1d" in bad.output


def test_missing_log_says_so_and_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[observer]\npath = "{tmp_path / "none.jsonl"}"\n')
    result = run(events, "--config", str(config))
    assert result.exit_code == 0
    assert "no events yet" in result.stderr
    config.write_text("[observer]\npaht = 1\n")
    for command in (events, activity):
        broken = run(command, "--config", str(config))
        assert broken.exit_code == 2
        assert "observer.paht: unknown key" in broken.stderr


def test_follow_prints_new_events_as_they_arrive(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(story_log()[0])
    lines: list[str] = []
    stop = threading.Event()

    def echo(line: str) -> None:
        lines.append(click.unstyle(line))

    thread = threading.Thread(
        target=show_events,
        args=(log, EventFilter()),
        kwargs={"follow": True, "echo": echo, "stop": stop, "poll_s": 0.01},
        daemon=True,
    )
    thread.start()
    try:
        time.sleep(0.05)
        with log.open("a") as out:
            out.writelines(story_log()[1:])
        deadline = time.monotonic() + 2
        while not any("server.stopped" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=1)
    assert not any("server.started" in line for line in lines)  # follow starts at the end
    assert any("server.stopped" in line for line in lines)
    story = [line for line in lines if "req_two00002" in line or line.startswith("  ")]
    assert story[0].endswith("ollama/qwen3:8b") and "req_two00002" in story[0]


def test_follow_prints_a_long_request_live_after_the_hold() -> None:
    lines: list[str] = []
    printer = StoryPrinter(lambda line: lines.append(click.unstyle(line)), hold_s=1.0)
    records = [json.loads(line) for line in story_log()]
    received_one, received_two, route_one = records[1], records[2], records[3]
    for record in (received_one, received_two, route_one):
        printer.feed(record)
    assert lines == []
    printer.flush_stale(now=time.monotonic() + 5)  # both are old now: printed as they stand
    assert [line.split()[2] for line in lines if not line.startswith("  ")] == [
        "req_one00001",
        "req_two00002",
    ]
    lines.clear()
    printer.feed(records[5])  # req_one's ghost step, after req_two's header
    assert "req_one00001  (continued)" in lines[0]
    assert lines[1].lstrip().startswith("step 1")
    printer.feed(records[7])  # req_one fails: same request, no second header
    assert len(lines) == 3 and lines[2].lstrip().startswith("failed")


# --- activity ------------------------------------------------------------------------------


def test_activity_table_and_json(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    table = run(activity, "--config", str(config))
    assert table.exit_code == 0, table.output
    out = table.stdout.splitlines()
    assert out[0].startswith("requests since ") and out[0].endswith("by model")
    header = out[1].split()
    assert header[:3] == ["model", "requests", "errors"] and header[-1] == "cost"
    ollama = next(line for line in out if line.startswith("ollama/qwen3:8b"))
    expected = ["ollama/qwen3:8b", "1", "0", "120", "30", "0", "1,500", "1,500", "-", "$0.0015"]
    assert ollama.split() == expected
    failed = next(line for line in out if line.startswith("sparks "))
    assert "1 (upstream_error 1)" in failed
    assert out[-1].split()[:2] == ["total", "2"]
    data = json.loads(run(activity, "--config", str(config), "--json", "--by", "ghost").stdout)
    assert data["by"] == "ghost"
    assert {g["key"]: g["requests"] for g in data["groups"]} == {"-": 1, "coder": 1}
    assert data["total"]["tokens_in"] == 120


def test_activity_rejects_bad_by_and_since(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    assert run(activity, "--config", str(config), "--by", "colour").exit_code == 2
    bad = run(activity, "--config", str(config), "--since", "soonish")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_activity_on_an_empty_window(log_config: tuple[Path, Path]) -> None:
    config, _ = log_config
    result = run(activity, "--config", str(config), "--since", "1m")
    assert result.exit_code == 0
    assert result.stdout.startswith("no requests since")


def test_errors_cell_is_compact() -> None:
    row = {"errors": 6, "errors_by_code": {"upstream_error": 3, "invalid_value": 2, "x": 1}}
    assert errors_text(row) == "6 (upstream_error 3, invalid_value 2, +1)"
    assert errors_text({"errors": 0, "errors_by_code": {}}) == "0"
