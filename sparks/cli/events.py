"""`sparks events`: the observer log, read so that one request reads as one story.

Pretty output holds a request's events until its terminal event and prints them together: a
header (time, id, method path, principal, model), then one indented line per route decision,
upstream attempt, ghost step and the outcome. Events without a request id (server.started /
server.stopped) are single lines. `--json` passes the log's lines through unchanged, for jq.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from sparks.cli.options import config_option, json_option, load_or_exit
from sparks.observe.event_log import (
    EventFilter,
    LogLine,
    follow_events,
    format_ts,
    log_files,
    parse_since,
    read_events,
)
from sparks.observe.observer import printable

TERMINAL_EVENTS = frozenset({"request.completed", "request.failed", "request.rejected"})
FOLLOW_HOLD_S = 1.5
LABEL_WIDTH = 12
_OUTCOME_COLORS = {"request.completed": "green", "request.failed": "red"}


def config_log_path(config_path: str | None) -> Path:
    """The observer log named by the config; exits 2 (naming file and key) on a bad config."""
    from sparks.observe.observer import events_path

    return events_path(load_or_exit(config_path, detect=False).observer)


def since_ts(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: `--since` → the canonical ts it stands for (a bad value exits 2)."""
    if value is None:
        return None
    try:
        return format_ts(parse_since(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def format_cost(value: float) -> str:
    """Dollars: four places, or up to six for sub-cent amounts that would otherwise show as 0."""
    if value == 0:
        return "$0"
    if value >= 0.01:
        return f"${value:.4f}"
    text = f"{value:.6f}".rstrip("0")
    return f"${text}" if text != "0." else "<$0.000001"


def _clock(record: dict[str, Any]) -> str:
    ts = str(record.get("ts") or "")
    return ts.replace("T", " ", 1) if ts else "?"


def _outcome_line(record: dict[str, Any], requested_model: Any = None) -> str:
    event = record.get("event")
    status = record.get("status")
    if event == "request.completed":
        parts = [f"{status}", _ms(record.get("latency_ms"))]
        if record.get("ttft_ms") is not None:
            parts.append(f"ttft {_ms(record['ttft_ms'])}")
        usage = record.get("usage") or {}
        if isinstance(usage, dict) and usage:
            tokens_in, tokens_out = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
            parts.append(f"tokens {tokens_in} in / {tokens_out} out")
        if isinstance(record.get("cost"), int | float) and record["cost"] > 0:
            parts.append(format_cost(record["cost"]))
        if record.get("served_model") and record["served_model"] != requested_model:
            parts.append(f"served {record['served_model']}")
        if record.get("fallback_from"):
            parts.append(f"(fallback from {record['fallback_from']})")
        return "  ".join(parts)
    parts = [f"{status} {record.get('code') or ''}".strip(), _ms(record.get("latency_ms"))]
    if record.get("error"):
        parts.append(str(record["error"]))
    return "  ".join(parts)


def detail_line(record: dict[str, Any], requested_model: Any = None) -> tuple[str, str, str | None]:
    """(label, text, color) for one event inside a request's story; the outcome names the
    served model only when it differs from the one asked for."""
    event = str(record.get("event", ""))
    if event == "route.resolved":
        text = f"{record.get('kind') or '?'} → {record.get('target') or '-'}"
        chain = record.get("chain")
        if isinstance(chain, list) and len(chain) > 1:
            text += f"  chain {', '.join(map(str, chain))}"
        classifier = record.get("classifier")
        if isinstance(classifier, dict):
            text += f"  classifier {classifier.get('method')} {_ms(classifier.get('latency_ms'))}"
        return "route", text, None
    if event == "upstream.attempt":
        status = record.get("status")
        text = (
            f"#{record.get('attempt', '?')} {record.get('backend')}/{record.get('upstream_model')}"
        )
        text += f"  {status if status is not None else '---'}  {_ms(record.get('latency_ms'))}"
        if record.get("error"):
            text += f"  {record['error']}"
        ok = isinstance(status, int) and status < 400
        return "upstream", text, None if ok else "yellow"
    if event == "ghost.step":
        summary = record.get("args_summary") or ""
        text = f"{record.get('tool')} {summary}".rstrip()
        text += f"  {'ok' if record.get('ok') else 'FAILED'}  {_ms(record.get('duration_ms'))}"
        return f"step {record.get('step', '?')}", text, None if record.get("ok") else "red"
    if event in TERMINAL_EVENTS:
        label = event.split(".", 1)[1]
        return label, _outcome_line(record, requested_model), _OUTCOME_COLORS.get(event, "yellow")
    if event == "client.disconnected":
        return "disconnected", f"after {_ms(record.get('after_ms'))}", "yellow"
    return event, _fields_text(record), None


def _fields_text(record: dict[str, Any]) -> str:
    skip = {"ts", "event", "level", "request_id"}
    parts = []
    for key, value in record.items():
        if key in skip or value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        elif isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in value.items() if v not in (None, ""))
        parts.append(f"{key}={value}")
    return " ".join(parts)


def header_line(records: list[dict[str, Any]], continued: bool = False) -> str:
    """Time, request id, method path, principal, model: from request.received when present."""
    first = next((r for r in records if r.get("event") == "request.received"), records[0])
    rid = str(first.get("request_id"))
    if continued:
        return click.style(f"{_clock(first)}  {rid}  (continued)", dim=True)
    parts = [click.style(_clock(first), dim=True), click.style(rid, bold=True)]
    if first.get("event") == "request.received":
        parts.append(f"{first.get('method', '')} {first.get('path', '')}".strip())
        parts.append(str(first.get("principal") or "-"))
        if first.get("model"):
            parts.append(click.style(str(first["model"]), fg="cyan"))
        if first.get("stream"):
            parts.append("stream")
    return "  ".join(parts)


class StoryPrinter:
    """Groups events by request; a group prints when its terminal event arrives.

    With `hold_s` (follow mode) a request still open after that long prints what it has and
    then streams its later events live, under a "(continued)" header when others came between.
    """

    def __init__(self, echo: Callable[[str], None], hold_s: float | None = None) -> None:
        self.echo = echo
        self.hold_s = hold_s
        self.held: dict[str, list[dict[str, Any]]] = {}
        self.held_at: dict[str, float] = {}
        self.live: dict[str, dict[str, Any]] = {}
        self.last_rid: str | None = None

    def feed(self, record: dict[str, Any]) -> None:
        record = printable(record)
        rid = record.get("request_id")
        if not isinstance(rid, str) or not rid:
            self.echo(f"{click.style(_clock(record), dim=True)}  {self._single(record)}")
            self.last_rid = None
            return
        terminal = record.get("event") in TERMINAL_EVENTS
        if rid in self.live:
            if self.last_rid != rid:
                self.echo(header_line([self.live[rid]], continued=True))
            self._detail(record, self.live[rid].get("model"))
            self.last_rid = rid
            if terminal:
                del self.live[rid]
            return
        self.held.setdefault(rid, []).append(record)
        self.held_at.setdefault(rid, time.monotonic())
        if terminal:
            self._print_group(rid)

    def flush_stale(self, now: float | None = None) -> None:
        """Follow mode: print requests held longer than `hold_s`, then stream them live."""
        if self.hold_s is None:
            return
        now = time.monotonic() if now is None else now
        for rid in [r for r, at in self.held_at.items() if now - at >= self.hold_s]:
            self.live[rid] = self.held[rid][0]
            self._print_group(rid)

    def flush_all(self) -> None:
        """Print requests that never finished (in flight, or the daemon died) as they stand."""
        for rid in list(self.held):
            self._print_group(rid)

    def _print_group(self, rid: str) -> None:
        records = self.held.pop(rid)
        self.held_at.pop(rid, None)
        self.echo(header_line(records))
        requested = next(
            (r.get("model") for r in records if r.get("event") == "request.received"), None
        )
        for record in records:
            if record.get("event") != "request.received":
                self._detail(record, requested)
        self.last_rid = rid

    def _detail(self, record: dict[str, Any], requested_model: Any = None) -> None:
        label, text, color = detail_line(record, requested_model)
        padded = label.ljust(LABEL_WIDTH - 1) + " "
        self.echo(f"  {click.style(padded, fg=color) if color else padded}{text}")

    @staticmethod
    def _single(record: dict[str, Any]) -> str:
        event = str(record.get("event", ""))
        color = {"error": "red", "warning": "yellow"}.get(str(record.get("level")), "cyan")
        return f"{click.style(event, fg=color)}  {_fields_text(record)}".rstrip()


def show_events(
    path: Path,
    event_filter: EventFilter,
    *,
    follow: bool = False,
    as_json: bool = False,
    echo: Callable[[str], None] = click.echo,
    write_raw: Callable[[bytes], None] | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 0.2,
) -> None:
    """Print the log (and, with `follow`, what comes next until `stop` or Ctrl-C)."""
    printer = StoryPrinter(echo, FOLLOW_HOLD_S if follow else None)
    raw = write_raw or (_stdout_writer() if as_json else None)
    events: Iterable[LogLine]
    if follow:
        events = follow_events(
            path,
            event_filter,
            from_start=event_filter.since is not None,
            poll_s=poll_s,
            stop=stop,
            on_idle=None if as_json else printer.flush_stale,
        )
    else:
        events = read_events(path, event_filter)
    try:
        for line, record in events:
            if raw is not None:
                raw(line)
            else:
                printer.feed(record)
    finally:
        if not as_json:
            printer.flush_all()


def _stdout_writer() -> Callable[[bytes], None]:
    """Raw bytes to stdout, flushed per line so `--follow --json | jq` sees events at once."""
    out = sys.stdout.buffer

    def write(line: bytes) -> None:
        out.write(line)
        out.flush()

    return write


@click.command("events")
@config_option
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing events as they are written (new ones only, unless --since is given).",
)
@click.option(
    "--since", callback=since_ts, metavar="WHEN", help="Only events since 10m, 2h, 1d or a time."
)
@click.option("--request-id", metavar="ID", help="Only this request (the full id or its tail).")
@click.option(
    "--event",
    "event_names",
    multiple=True,
    metavar="NAME",
    help="Only these events (repeatable; globs like 'request.*').",
)
@json_option
def events(
    config_path: str | None,
    follow: bool,
    since: str | None,
    request_id: str | None,
    event_names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Read the observer event log, one request per story."""
    path = config_log_path(config_path)
    if not follow and not log_files(path):
        click.echo(f"no events yet: {path} does not exist", err=True)
        return
    if follow:
        click.echo(f"following {path} (Ctrl-C to stop)", err=True)
    event_filter = EventFilter(since=since, request_id=request_id, events=event_names)
    try:
        show_events(path, event_filter, follow=follow, as_json=as_json)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """`sparks events | head`: stop quietly, without a traceback at interpreter exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
