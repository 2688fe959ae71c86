"""The dashboard's view of the observer log: one compact row per request, kept up to date by
reading only what was appended since the last look.

`sparks activity` reads the whole log on every run (0.45 s for 50 MB); a dashboard asks every
few seconds, for several groupings and a time series, so it keeps this index instead. Each
refresh reads the bytes appended since the last one, follows rotation (`events.jsonl` → `.1` →
…) by inode, forgets the requests whose first file has been rotated out, and starts over when the
log was truncated or replaced. A row holds exactly what `observe.activity` reads from a request's
events, so the figures computed from rows are the CLI's (tests/test_ui.py compares them).

A request's whole story (every event) is not kept: `story()` finds it in the files by its id.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sparks.observe.event_log import log_files, ts_key

try:
    import orjson

    _fast_loads: Any = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None

EVENT_NEEDLE = b'"event":"'
TERMINAL = frozenset({"request.completed", "request.failed", "request.rejected"})
INTERESTING = frozenset(
    {
        b"request.received",
        b"route.resolved",
        b"upstream.attempt",
        b"ghost.step",
        *(name.encode() for name in TERMINAL),
    }
)
SHARED_FIELDS = (
    "path",
    "principal",
    "model",
    "api",
    "kind",
    "target",
    "ghost",
    "backend",
    "served_model",
    "fallback_from",
    "code",
    "tool",
    "args_summary",
)
READ_CHUNK = 4 << 20
MAX_STEPS = 200  # per ghost run; a runaway loop cannot grow a row without bound
MAX_TEXT = 300  # error messages and argument summaries, as kept in a row
MAX_STORY_EVENTS = 500

Inode = tuple[int, int]
T = TypeVar("T")


def loads(line: bytes) -> Any:
    """orjson when installed; the standard library decides whatever orjson refuses (NaN, huge
    integers), as `observe.activity` would have read it."""
    if _fast_loads is not None:
        try:
            return _fast_loads(line)
        except ValueError:
            pass
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _text(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else value


class RequestRow:
    """One request: what its received, route, attempt, step and terminal events said."""

    __slots__ = (
        "api",
        "backend",
        "code",
        "cost",
        "dead",
        "end_ts",
        "error",
        "fallback_from",
        "ghost",
        "kind",
        "latency_ms",
        "model",
        "outcome",
        "path",
        "principal",
        "rid",
        "served_model",
        "status",
        "steps",
        "stream",
        "target",
        "ts",
        "ttft_ms",
        "upstream_calls",
        "usage",
    )

    def __init__(self, rid: str, record: dict[str, Any]) -> None:
        self.rid = rid
        self.ts = ts_key(record.get("ts"))
        self.path = record.get("path")
        self.principal = record.get("principal")
        self.model = record.get("model")
        self.stream = record.get("stream")
        self.api = record.get("api")
        self.kind = self.target = self.ghost = self.backend = None
        self.outcome: str | None = None  # the terminal event's name, once seen
        self.dead = False  # superseded by a second `request.received` with the same id
        self.end_ts = self.status = self.code = self.error = None
        self.latency_ms = self.ttft_ms = self.cost = self.upstream_calls = None
        self.usage: tuple[Any, Any] | None = None
        self.served_model = self.fallback_from = None
        self.steps: list[tuple[Any, ...]] | None = None

    def finish(self, record: dict[str, Any]) -> None:
        self.outcome = record.get("event")
        self.end_ts = record.get("ts")
        self.status = record.get("status")
        self.code = record.get("code")
        self.error = _text(record.get("error"))
        self.latency_ms = record.get("latency_ms")
        self.ttft_ms = record.get("ttft_ms")
        self.cost = record.get("cost")
        self.upstream_calls = record.get("upstream_calls")
        usage = record.get("usage")
        if isinstance(usage, dict):
            self.usage = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        self.served_model = record.get("served_model")
        self.fallback_from = record.get("fallback_from")

    def terminal_record(self) -> dict[str, Any]:
        """The terminal event as `observe.activity.GroupStats.add` reads it."""
        record: dict[str, Any] = {
            "event": self.outcome,
            "code": self.code,
            "cost": self.cost,
            "upstream_calls": self.upstream_calls,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
        }
        if self.usage is not None:
            record["usage"] = {"prompt_tokens": self.usage[0], "completion_tokens": self.usage[1]}
        return record

    def group_key(self, by: str) -> str:
        """The row's group, by `observe.activity`'s rules (`-` when unknown)."""
        if by == "model":
            known = self.served_model or self.model
        elif by == "principal":
            known = self.principal
        elif by == "ghost":
            known = self.ghost
        else:
            known = self.backend
        return str(known) if known else "-"


class LogIndex:
    """Rows of every request in the rotated log, oldest first. Thread-safe: `refresh()` and the
    readers take `lock`, so the dashboard can do both in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.version = 0  # bumped whenever rows change
        self.generation = 0  # bumped whenever rows are forgotten: derived figures start over
        self._strings: dict[str, str] = {}
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.rows: list[RequestRow] = []
        self.open: dict[str, RequestRow] = {}
        self.segments: list[tuple[Inode, int]] = []  # (file inode, index of its first row)
        self.dropped = 0  # rows forgotten from the front (their file was rotated out)
        self.tail: tuple[Inode, int] | None = None  # the newest file read, and how far
        self.version += 1
        self.generation += 1

    def read(self, view: Callable[[LogIndex], T]) -> T:
        """Catch up with the log, then run `view` on the rows (both under the lock)."""
        with self.lock:
            self._refresh()
            return view(self)

    def refresh(self) -> None:
        with self.lock:
            self._refresh()

    def close(self) -> None:
        """Stop a refresh in progress at its next chunk (the daemon is shutting down)."""
        self.closed = True

    def _refresh(self) -> None:
        handles = _open_all(self.path)
        try:
            inodes = [inode for inode, _ in handles]
            start = 0
            if self.tail is not None and self.tail[0] in inodes:
                start = inodes.index(self.tail[0])
                size = os.fstat(handles[start][1].fileno()).st_size
                if size < self.tail[1]:  # truncated in place
                    self._reset()
                    start = 0
                else:
                    self._forget_rotated_out(set(inodes))
            else:
                self._reset()
            for inode, handle in handles[start:]:
                offset = 0
                if self.tail is not None and self.tail[0] == inode:
                    offset = self.tail[1]
                else:
                    self.segments.append((inode, self.dropped + len(self.rows)))
                end = self._read(handle, offset)
                if end != offset:
                    self.version += 1
                self.tail = (inode, end)
        finally:
            for _, handle in handles:
                handle.close()

    def _forget_rotated_out(self, present: set[Inode]) -> None:
        """Rotation deletes the oldest backup: rows that began there leave with it, as they leave
        `sparks activity`."""
        keep = len(self.segments)
        for index, (inode, _) in enumerate(self.segments):
            if inode not in present:
                keep = len(self.segments) - index - 1
        if keep == len(self.segments):
            return
        self.segments = self.segments[len(self.segments) - keep :]
        first = self.segments[0][1] if self.segments else self.dropped + len(self.rows)
        gone = first - self.dropped
        for row in self.rows[:gone]:
            if self.open.get(row.rid) is row:
                del self.open[row.rid]
        del self.rows[:gone]
        self.dropped = first
        self.version += 1
        self.generation += 1

    def _read(self, handle: BinaryIO, offset: int) -> int:
        """Index complete lines from `offset`; returns the offset after the last newline."""
        handle.seek(offset)
        pending = b""
        while not self.closed and (chunk := handle.read(READ_CHUNK)):
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                for line in data[: cut - 1].split(b"\n"):
                    self._line(line)
                offset += cut
            pending = data[cut:]
        return offset

    def _line(self, line: bytes) -> None:
        start = line.find(EVENT_NEEDLE) + len(EVENT_NEEDLE)
        if start >= len(EVENT_NEEDLE) and line.find(EVENT_NEEDLE, start) < 0:
            if line[start : line.find(b'"', start)] not in INTERESTING:
                return  # certainly an event no row needs: not worth parsing
        record = loads(line)
        if not isinstance(record, dict):
            return
        rid = record.get("request_id")
        if not isinstance(rid, str):
            return
        event = record.get("event")
        if event == "request.received":
            self._share(record)
            previous = self.open.get(rid)
            if previous is not None:
                previous.dead = True
            row = self.open[rid] = RequestRow(rid, record)
            self.rows.append(row)
            return
        self._share(record)
        row = self.open.get(rid)
        if row is None:
            return  # its start was rotated out, or it has already ended
        if event in TERMINAL:
            row.finish(record)
            del self.open[rid]
        elif event == "route.resolved":
            row.kind, row.target, row.ghost = (
                record.get("kind"),
                record.get("target"),
                record.get("ghost"),
            )
        elif event == "upstream.attempt":
            row.backend = record.get("backend")
        elif event == "ghost.step":
            steps = row.steps if row.steps is not None else []
            row.steps = steps
            if len(steps) < MAX_STEPS:
                steps.append(
                    (
                        record.get("step"),
                        record.get("tool"),
                        _text(record.get("args_summary")),
                        record.get("ok"),
                        record.get("duration_ms"),
                        record.get("ts"),
                    )
                )

    def _share(self, record: dict[str, Any]) -> None:
        """One string object per distinct model, path, principal…: thousands of rows repeat the
        same few values (measured: 53 → 30 MB for a 50 MB log)."""
        strings = self._strings
        if len(strings) > 50_000:
            strings.clear()
        for key in SHARED_FIELDS:
            value = record.get(key)
            if type(value) is str:
                record[key] = strings.setdefault(value, value)

    def story(self, rid: str) -> list[dict[str, Any]]:
        """Every event of one request, oldest first, found by its id in the files (newest file
        first; a file holding the request's `request.received` is the last one needed)."""
        needle = f'"request_id":"{rid}"'.encode()
        found: list[list[dict[str, Any]]] = []
        for path in reversed(log_files(self.path)):
            events, started = _events_with(path, needle, rid)
            found.append(events)
            if started or sum(len(e) for e in found) >= MAX_STORY_EVENTS:
                break
        ordered = [event for events in reversed(found) for event in events]
        return ordered[:MAX_STORY_EVENTS]


def _open_all(path: Path) -> list[tuple[Inode, BinaryIO]]:
    """The log files, oldest first, opened now: later renames cannot mix them up."""
    handles = []
    for file in log_files(path):
        try:
            handle = open(file, "rb")  # closed by the caller
        except FileNotFoundError:
            continue
        stat = os.fstat(handle.fileno())
        handles.append(((stat.st_dev, stat.st_ino), handle))
    return handles


def _events_with(path: Path, needle: bytes, rid: str) -> tuple[list[dict[str, Any]], bool]:
    """The events of one file whose line contains `needle`, and whether one is the request's
    `request.received`."""
    events: list[dict[str, Any]] = []
    started = False
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return events, False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                at = data.find(needle)
                while at >= 0 and len(events) < MAX_STORY_EVENTS:
                    begin = data.rfind(b"\n", 0, at) + 1
                    end = data.find(b"\n", at)
                    if end < 0:
                        break  # a line still being written
                    record = loads(data[begin:end])
                    if isinstance(record, dict) and record.get("request_id") == rid:
                        events.append(record)
                        started = started or record.get("event") == "request.received"
                    at = data.find(needle, end)
    except (FileNotFoundError, ValueError):
        pass
    return events, started
