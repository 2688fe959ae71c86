"""Reading the observer log (SPEC §8) back: rotated files in order, filters, `--follow`.

The writer (`observer.RotatingFile`) appends whole lines with one `os.write` and rotates by
renaming `events.jsonl` → `.1` → … → `.N`, so readers go oldest first (`.N` … `.1`, then the
live file). A reader may still meet a half-written last line (a crash, or a read racing a
write) or junk someone pasted in; those lines are skipped, never fatal.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

FOLLOW_POLL_S = 0.2
TS_NEEDLE = b'"ts":"'
TS_LENGTH = len("2026-11-23T11:45:08.123Z")
_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def format_ts(moment: datetime) -> str:
    """The observer's own `ts` format, so timestamps compare as plain strings."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`30s`, `10m`, `2h`, `1d`, `1w` ago, or an ISO 8601 / RFC 3339 time (naive means UTC)."""
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if match:
        amount = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        return (now or datetime.now(UTC)) - timedelta(seconds=amount)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a duration (30s, 10m, 2h, 1d) nor a timestamp "
            "(2026-11-23T11:45:00Z, 2026-11-23)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ts_key(ts: Any) -> str | None:
    """A record's `ts` in canonical form for string comparison; None when missing or unreadable."""
    if not isinstance(ts, str):
        return None
    if _CANONICAL_TS.fullmatch(ts):
        return ts
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return format_ts(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def line_ts(line: bytes) -> bytes | None:
    """The top-level `ts` of a raw line without parsing it, or None when that is not certain
    (absent, not in the observer's format, or present twice, e.g. inside logged content)."""
    start = line.find(TS_NEEDLE)
    if start < 0:
        return None
    start += len(TS_NEEDLE)
    end = start + TS_LENGTH
    if line[end : end + 1] != b'"' or line[end - 1 : end] != b"Z" or line[start + 10] != 84:
        return None  # 84 is "T"
    if line.find(TS_NEEDLE, end) >= 0:
        return None
    return line[start:end]


def log_files(path: Path) -> list[Path]:
    """The live log and its rotated backups, oldest first (`.N` … `.1`, then the live file)."""
    backups: list[tuple[int, Path]] = []
    prefix = path.name + "."
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            suffix = candidate.name[len(prefix) :]
            if candidate.name.startswith(prefix) and suffix.isdigit():
                backups.append((int(suffix), candidate))
    files = [p for _, p in sorted(backups, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def iter_raw_lines(paths: Iterable[Path]) -> Iterator[bytes]:
    """Every complete line of the files in order; a file that vanished mid-read is skipped."""
    for path in paths:
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            continue
        with handle:
            for line in handle:
                if line.endswith(b"\n"):
                    yield line
                # an unterminated last line is still being written (or was cut by a crash)


def parse_line(line: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (blank, junk, truncated)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True)
class EventFilter:
    """What `sparks events` shows. `since` is a canonical ts string; `events` are names or globs
    (`request.*`); a request id also matches by its tail, as the console prints only that."""

    since: str | None = None
    request_id: str | None = None
    events: tuple[str, ...] = ()

    def cheap_reject(self, line: bytes) -> bool:
        """True when the raw line is certainly filtered out by time; saves parsing old lines."""
        if self.since is None:
            return False
        ts = line_ts(line)
        return ts is not None and ts < self.since.encode()

    def matches(self, record: dict[str, Any]) -> bool:
        if self.since is not None:
            ts = ts_key(record.get("ts"))
            if ts is None or ts < self.since:
                return False
        if self.request_id:
            rid = record.get("request_id")
            if not isinstance(rid, str) or not (
                rid == self.request_id or rid.endswith(self.request_id)
            ):
                return False
        if self.events:
            name = str(record.get("event", ""))
            if not any(name == e or fnmatch.fnmatchcase(name, e) for e in self.events):
                return False
        return True


LogLine = tuple[bytes, dict[str, Any]]


def read_events(path: Path, event_filter: EventFilter | None = None) -> Iterator[LogLine]:
    """Matching (raw line, record) pairs from the whole rotated log, oldest first."""
    return _matching(iter_raw_lines(log_files(path)), event_filter or EventFilter())


def _matching(lines: Iterable[bytes], wanted: EventFilter) -> Iterator[LogLine]:
    for line in lines:
        if wanted.cheap_reject(line):
            continue
        record = parse_line(line)
        if record is not None and wanted.matches(record):
            yield line, record


def _rotated_after(path: Path, inode: tuple[int, int] | None) -> list[Path]:
    """Backups newer than the file with `inode` (which rotation renamed to `.k`): `.k-1` … `.1`.
    Nothing when that file is gone (deleted by hand, or rotated out): better a gap than a replay."""
    backups = [p for p in log_files(path) if p != path]
    for index, backup in enumerate(backups):
        try:
            stat = backup.stat()
        except FileNotFoundError:
            continue
        if (stat.st_dev, stat.st_ino) == inode:
            return backups[index + 1 :]
    return []


class _Tail:
    """The live file opened for tailing; notices rotation (new inode) and truncation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO | None = None
        self.inode: tuple[int, int] | None = None
        self.pending = b""

    def open(self, at_end: bool) -> bool:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self.handle, self.inode, self.pending = handle, (stat.st_dev, stat.st_ino), b""
        if at_end:
            handle.seek(0, os.SEEK_END)
        return True

    def read_lines(self) -> list[bytes]:
        """Complete lines appended since the last call; a partial tail waits for its newline."""
        if self.handle is None:
            return []
        data = self.pending + self.handle.read()
        lines = data.split(b"\n")
        self.pending = lines.pop()
        return [line + b"\n" for line in lines]

    def replaced_or_truncated(self) -> bool:
        assert self.handle is not None
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return True  # between the writer's rename and its reopen
        if (stat.st_dev, stat.st_ino) != self.inode:
            return True
        if stat.st_size < self.handle.tell():
            self.handle.seek(0)
            self.pending = b""
        return False

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def follow_events(
    path: Path,
    event_filter: EventFilter | None = None,
    *,
    from_start: bool = False,
    poll_s: float = FOLLOW_POLL_S,
    stop: threading.Event | None = None,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[LogLine]:
    """Matching events as they are written, until `stop` is set (or forever).

    With `from_start`, first replays the whole rotated log (use with a `since` filter). Then polls
    the live file every `poll_s` seconds; after a rotation it drains the old file through the
    handle it still holds, reads any backups rotated in after it (several rotations within one
    poll), then reopens the path. Only more rotations than `backups` within one poll (at 50 MB a
    file, over a gigabyte per second) would lose events. `on_idle` runs once per empty poll, so a
    consumer can act on time passing (flush what it holds) between events.
    """
    wanted = event_filter or EventFilter()
    stop = stop or threading.Event()
    if from_start:
        backups = [p for p in log_files(path) if p != path]
        yield from _matching(iter_raw_lines(backups), wanted)
    tail = _Tail(path)
    opened = tail.open(at_end=not from_start)
    try:
        while not stop.is_set():
            if not opened:
                opened = tail.open(at_end=False)
            lines = tail.read_lines()
            yield from _matching(lines, wanted)
            if opened and tail.replaced_or_truncated():
                yield from _matching(tail.read_lines(), wanted)  # written before the rename
                tail.close()
                newer = _rotated_after(path, tail.inode)
                yield from _matching(iter_raw_lines(newer), wanted)
                opened = tail.open(at_end=False)
                continue
            if not lines and on_idle is not None:
                on_idle()
            stop.wait(poll_s)
    finally:
        tail.close()
