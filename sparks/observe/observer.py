"""The observer event log (SPEC §8): JSON lines, 0600, size-rotated, live subscribers.

Each event is written with one `os.write` on an O_APPEND descriptor before the caller goes on, so
a `kill -9` of the daemon loses nothing already written (the kernel holds the page). There is no
per-event fsync: that guards against power loss, not process death, and would stall the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from sparks import jsonfast
from sparks.config import ObserverConfig
from sparks.observe.flood import RejectionFlood

log = logging.getLogger("sparks")

# Events that may share a write with the next one (never a request's terminal event).
DEFERRABLE = frozenset({"request.received", "route.resolved", "upstream.attempt", "ghost.step"})
FLUSH_DELAY_S = 0.05
LEVELS = {
    "request.failed": "error",
    "request.rejected": "warning",
    "client.disconnected": "warning",
}


def default_events_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state) / "sparks" / "events.jsonl"
    if sys.platform.startswith("linux"):
        return Path.home() / ".local" / "state" / "sparks" / "events.jsonl"
    return Path(click.get_app_dir("sparks")) / "events.jsonl"


def events_path(config: ObserverConfig) -> Path:
    return Path(config.path).expanduser() if config.path else default_events_path()


class _Timestamp:
    """`ts` as UTC RFC 3339 with milliseconds; the seconds part is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class RotatingFile:
    """Append-only JSONL file with size rotation (`events.jsonl.1` … `.N`), mode 0600."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd = -1
        self._size = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(self._fd, 0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, line: bytes) -> None:
        if self._fd < 0:
            self.open()
        if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        os.write(self._fd, line)
        self._size += len(line)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.unlink(self.path)
        self.open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Subscriber:
    """A live consumer with a bounded queue; dropped when it falls behind (never blocks writers)."""

    def __init__(self, matches: Callable[[dict[str, Any]], bool], maxsize: int = 1000) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize)
        self.matches = matches
        self.dropped = False
        self.on_drop: Callable[[], None] | None = None  # e.g. abort the subscriber's connection


class Observer:
    """Writes events to the log file, the console and live subscribers."""

    def __init__(self, config: ObserverConfig, console: TextIO | None = None) -> None:
        self.config = config
        self.console_color = bool(console is not None and console.isatty())
        self.path = events_path(config)
        self.file = RotatingFile(self.path, config.max_bytes, config.backups)
        self.console = console
        self.subscribers: set[Subscriber] = set()
        # In-process consumers of every event (metrics, traces): called with the event dict
        # right after its line is written; they must be quick, must not block and must not
        # change the dict.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        # Lines are rendered straight to bytes with orjson: structlog's processor chain and
        # JSONRenderer (str, then encode) cost more than the write itself (docs/performance.md)
        self._timestamp = _Timestamp()
        self._pending: list[bytes] = []
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self.flood = RejectionFlood(self.emit)

    @property
    def log_content(self) -> bool:
        return self.config.log_content

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event now (synchronously), then fan it out."""
        event_dict: dict[str, Any] = {
            "ts": self._timestamp(),
            "event": event,
            "level": LEVELS.get(event, "info"),
            **fields,
        }
        line = jsonfast.dumps(event_dict)
        self._write(line + b"\n", event in DEFERRABLE)
        for listener in self.listeners:
            try:
                listener(event_dict)
            except Exception:  # a metrics or trace bug must never fail the request
                log.exception("observer listener %r failed on %s", listener, event)
        if self.console is not None:
            self.console.write(render_console(event_dict, self.console_color) + "\n")
            self.console.flush()
        if self.subscribers:
            record = json.loads(line)  # each subscriber gets plain JSON data, not live objects
            for sub in list(self.subscribers):
                if not sub.matches(record):
                    continue
                try:
                    sub.queue.put_nowait(record)
                except asyncio.QueueFull:
                    sub.dropped = True
                    self.subscribers.discard(sub)
                    _wake_with_end(sub)
                    if sub.on_drop is not None:
                        sub.on_drop()

    def _write(self, line: bytes, deferrable: bool) -> None:
        """Events before a request's end may wait (up to FLUSH_DELAY_S) to share one write with
        the next; a terminal event, and everything waiting before it, is written at once, so
        a `kill -9` after a response still finds the whole request in the file (SPEC §8)."""
        if deferrable:
            if self._flush_handle is not None:  # a flush is due anyway: join it
                self._pending.append(line)
                return
            loop = self._loop()
            if loop is not None:
                self._pending.append(line)
                self._flush_handle = loop.call_later(FLUSH_DELAY_S, self._flush_due)
                return
        if self._pending:
            self._pending.append(line)
            self.flush()
        else:
            self.file.write(line)

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        """The serving loop, looked up once (the lookup showed in profiles); None outside one."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            try:
                loop = self._event_loop = asyncio.get_running_loop()
            except RuntimeError:
                return None
        return loop

    def _flush_due(self) -> None:
        self._flush_handle = None
        self.flush()

    def flush(self) -> None:
        """Write what waits. The timer is left to run out rather than cancelled: at a few
        thousand requests a second, one timer per 50 ms beats one scheduled per request."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self.file.write(data)

    def subscribe(self, matches: Callable[[dict[str, Any]], bool]) -> Subscriber:
        sub = Subscriber(matches)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def end_subscriptions(self) -> None:
        for sub in list(self.subscribers):
            _wake_with_end(sub)
        self.subscribers.clear()

    def close(self) -> None:
        self.flood.close()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.flush()
        self.end_subscriptions()
        self.file.close()


def _wake_with_end(sub: Subscriber) -> None:
    while True:
        try:
            sub.queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            sub.queue.get_nowait()


def _dumps(obj: Any, **_: Any) -> str:
    return jsonfast.dumps(obj).decode()


_COLORS = {"error": "\x1b[31m", "warning": "\x1b[33m", "info": "\x1b[36m"}
_CONSOLE_SKIP = {"ts", "event", "level", "request_id"}


def printable(value: Any) -> Any:
    """Control characters from request data shown as escapes (`\\x1b`), never raw to a
    terminal; dicts and lists are escaped all the way down."""
    if isinstance(value, str):
        if value.isprintable():
            return value
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


def render_console(record: dict[str, Any], color: bool = False) -> str:
    """One short line per event: time, event, request id tail, then the interesting fields."""
    record = printable(record)
    ts = str(record.get("ts", ""))[11:23]
    event = str(record.get("event", ""))
    rid = str(record.get("request_id") or "")[-8:]
    parts = []
    for key, value in record.items():
        if key in _CONSOLE_SKIP or value in (None, "", [], {}):
            continue
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items() if v not in (None, ""))
        elif isinstance(value, float):
            value = f"{value:.1f}"
        parts.append(f"{key}={value}")
    label = f"{event:<20}"
    if color:
        label = _COLORS.get(str(record.get("level")), "") + label + "\x1b[0m"
    return f"{ts} {label} {rid:>8} " + " ".join(parts)
