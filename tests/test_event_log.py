"""Reading the observer log back: rotation order, junk and partial lines, filters, follow."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sparks.observe.event_log import (
    EventFilter,
    follow_events,
    format_ts,
    line_ts,
    log_files,
    parse_since,
    read_events,
    ts_key,
)
from sparks.observe.observer import RotatingFile, _dumps

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def event_line(event: str, at: datetime, request_id: str | None = None, **fields: Any) -> str:
    """A line as the observer writes it: fields first, then event, ts, level."""
    record: dict[str, Any] = {"request_id": request_id} if request_id else {}
    record.update(fields)
    record.update(event=event, ts=format_ts(at), level="info")
    return _dumps(record) + "\n"


def names(pairs: Iterator[tuple[bytes, dict[str, Any]]]) -> list[str]:
    return [record["event"] for _, record in pairs]


# --- --since -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_since_durations_count_back_from_now(value: str, ago: timedelta) -> None:
    assert parse_since(value, NOW) == NOW - ago


def test_since_timestamps_naive_means_utc_and_offsets_convert() -> None:
    assert parse_since("2026-11-23T11:45:00Z") == datetime(2026, 11, 23, 11, 45, tzinfo=UTC)
    assert parse_since("2026-11-23T11:45:00") == datetime(2026, 11, 23, 11, 45, tzinfo=UTC)
    assert parse_since("2026-11-23 13:45:00+02:00") == datetime(2026, 11, 23, 11, 45, tzinfo=UTC)
    assert parse_since("2026-11-23") == datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "10", "5 parsecs", "-3m", "2026-13-01", ""])
def test_since_rejects_garbage_with_a_message_showing_the_forms(value: str) -> None:
    with pytest.raises(ValueError, match=r"30s, 10m, 2h, 1d"):
        parse_since(value, NOW)


def test_ts_key_canonicalizes_other_iso_forms() -> None:
    assert ts_key("2026-11-23T11:45:08.123Z") == "2026-11-23T11:45:08.123Z"
    assert ts_key("2026-11-23T13:45:08.123+02:00") == "2026-11-23T11:45:08.123Z"
    assert ts_key("2026-11-23T11:45:08") == "2026-11-23T11:45:08.000Z"
    assert ts_key("soon") is None
    assert ts_key(None) is None


def test_line_ts_is_only_trusted_when_unambiguous() -> None:
    plain = event_line("request.received", NOW, "req_1").encode()
    assert line_ts(plain) == b"2026-11-23T12:00:00.000Z"
    nested = event_line(
        "request.received", NOW, "req_1", messages=[{"ts": "1999-01-01T00:00:00.000Z"}]
    ).encode()
    assert line_ts(nested) is None
    assert line_ts(b'{"event":"x","ts":"2026-11-23T12:00:00Z"}\n') is None


# --- reading -------------------------------------------------------------------------------


def test_rotated_files_are_read_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for index, name in enumerate(["events.jsonl.2", "events.jsonl.1", "events.jsonl"]):
        (tmp_path / name).write_text(event_line(f"e{index}", NOW + timedelta(seconds=index)))
    (tmp_path / "events.jsonl.bak").write_text(event_line("ignored", NOW))
    (tmp_path / "events.jsonl.10").write_text(event_line("oldest", NOW - timedelta(days=1)))
    assert [p.name for p in log_files(path)] == [
        "events.jsonl.10",
        "events.jsonl.2",
        "events.jsonl.1",
        "events.jsonl",
    ]
    assert names(read_events(path)) == ["oldest", "e0", "e1", "e2"]


def test_partial_last_line_junk_and_non_objects_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = event_line("request.received", NOW, "req_1")
    path.write_text(
        "not json at all\n" + good + "[1, 2]\n\n" + good.replace("req_1", "req_2") + good[:40]
    )
    assert [r["request_id"] for _, r in read_events(path)] == ["req_1", "req_2"]


def test_missing_log_reads_as_empty(tmp_path: Path) -> None:
    assert list(read_events(tmp_path / "nope.jsonl")) == []
    assert log_files(tmp_path / "nope" / "events.jsonl") == []


def test_filters_by_since_request_id_and_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        event_line("server.started", NOW - timedelta(hours=2), bind="127.0.0.1:8787"),
        event_line("request.received", NOW - timedelta(hours=1), "req_aaaa1111"),
        event_line("request.completed", NOW - timedelta(minutes=59), "req_aaaa1111"),
        event_line("request.received", NOW, "req_bbbb2222"),
        event_line("upstream.attempt", NOW, "req_bbbb2222"),
        event_line("request.failed", NOW, "req_bbbb2222"),
    ]
    path.write_text("".join(lines))
    since = format_ts(NOW - timedelta(minutes=59, seconds=30))
    assert names(read_events(path, EventFilter(since=since))) == [
        "request.completed",
        "request.received",
        "upstream.attempt",
        "request.failed",
    ]
    by_tail = EventFilter(request_id="aaaa1111")
    assert names(read_events(path, by_tail)) == ["request.received", "request.completed"]
    assert len(list(read_events(path, EventFilter(request_id="req_bbbb2222")))) == 3
    assert names(read_events(path, EventFilter(events=("request.*",)))) == [
        "request.received",
        "request.completed",
        "request.received",
        "request.failed",
    ]
    both = EventFilter(events=("server.started", "upstream.attempt"))
    assert names(read_events(path, both)) == ["server.started", "upstream.attempt"]


def test_since_is_decided_by_the_top_level_ts_not_logged_content(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    old_inside = [{"role": "user", "content": "x", "ts": "1999-01-01T00:00:00.000Z"}]
    new_inside = [{"role": "user", "content": "x", "ts": "2999-01-01T00:00:00.000Z"}]
    path.write_text(
        event_line("request.received", NOW, "req_new", messages=old_inside)
        + event_line("request.received", NOW - timedelta(days=2), "req_old", messages=new_inside)
    )
    since = format_ts(NOW - timedelta(days=1))
    found = [r["request_id"] for _, r in read_events(path, EventFilter(since=since))]
    assert found == ["req_new"]


# --- follow --------------------------------------------------------------------------------


class Follower:
    """Runs follow_events in a thread; `take(n)` waits (bounded) for n more events."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.stop = threading.Event()
        self.seen: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(path, kwargs), daemon=True)
        self.thread.start()

    def _run(self, path: Path, kwargs: dict[str, Any]) -> None:
        for _, record in follow_events(path, poll_s=0.01, stop=self.stop, **kwargs):
            self.seen.put(record)

    def take(self, count: int, timeout: float = 1.0) -> list[str]:
        return [self.seen.get(timeout=timeout)["event"] for _ in range(count)]

    def idle(self) -> bool:
        try:
            extra = self.seen.get(timeout=0.1)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {extra}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=1)
        assert not self.thread.is_alive()


@pytest.fixture
def follower_factory() -> Iterator[Any]:
    made: list[Follower] = []

    def make(path: Path, **kwargs: Any) -> Follower:
        follower = Follower(path, **kwargs)
        made.append(follower)
        return follower

    yield make
    for follower in made:
        follower.close()


def test_follow_starts_at_the_end_and_picks_up_appended_and_partial_lines(
    tmp_path: Path, follower_factory: Any
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_line("old", NOW))
    follower = follower_factory(path)
    assert follower.idle()
    with path.open("a") as out:
        out.write(event_line("first", NOW))
        out.flush()
        assert follower.take(1) == ["first"]
        second = event_line("second", NOW)
        out.write(second[:25])
        out.flush()
        assert follower.idle()  # half a line waits for the rest
        out.write(second[25:])
        out.flush()
        assert follower.take(1) == ["second"]


def test_follow_waits_for_a_log_that_does_not_exist_yet(
    tmp_path: Path, follower_factory: Any
) -> None:
    path = tmp_path / "state" / "events.jsonl"
    follower = follower_factory(path)
    assert follower.idle()
    path.parent.mkdir()
    path.write_text(event_line("born", NOW))
    assert follower.take(1) == ["born"]


def test_follow_keeps_up_across_rotation_without_loss_or_repeats(
    tmp_path: Path, follower_factory: Any
) -> None:
    path = tmp_path / "events.jsonl"
    writer = RotatingFile(path, max_bytes=400, backups=3)
    writer.write(event_line("before", NOW).encode())
    follower = follower_factory(path)
    assert follower.idle()
    sent = [f"e{i}" for i in range(12)]
    for name in sent:  # ~100-byte lines: rotates every few lines
        writer.write(event_line(name, NOW).encode())
    writer.close()
    assert (tmp_path / "events.jsonl.1").exists()
    assert follower.take(len(sent)) == sent
    assert follower.idle()
    writer = RotatingFile(path, max_bytes=400, backups=3)
    for name in ("x0", "x1", "x2", "x3", "x4", "x5", "x6"):  # one rotation, seen between polls
        writer.write(event_line(name, NOW).encode())
        assert follower.take(1) == [name]
    writer.close()
    assert follower.idle()


def test_follow_with_since_replays_the_rotated_log_first(
    tmp_path: Path, follower_factory: Any
) -> None:
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.jsonl.1").write_text(
        event_line("too-old", NOW - timedelta(hours=3)) + event_line("kept-1", NOW)
    )
    path.write_text(event_line("kept-2", NOW))
    since = format_ts(NOW - timedelta(hours=1))
    follower = follower_factory(path, event_filter=EventFilter(since=since), from_start=True)
    assert follower.take(2) == ["kept-1", "kept-2"]
    with path.open("a") as out:
        out.write(event_line("live", NOW))
    assert follower.take(1) == ["live"]


def test_follow_starts_over_after_truncation(tmp_path: Path, follower_factory: Any) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_line("a-long-event-name-to-make-the-file-bigger", NOW) * 3)
    follower = follower_factory(path)
    assert follower.idle()
    path.write_text(event_line("fresh", NOW))  # truncates in place, same inode
    assert follower.take(1) == ["fresh"]


def test_follow_calls_on_idle_between_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("")
    stop = threading.Event()
    idle_calls: list[int] = []

    def on_idle() -> None:
        idle_calls.append(1)
        if len(idle_calls) >= 3:
            stop.set()

    assert list(follow_events(path, poll_s=0.01, stop=stop, on_idle=on_idle)) == []
    assert len(idle_calls) == 3


def test_raw_lines_are_the_exact_bytes_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = '{"event": "spaced", "ts": "2026-11-23T12:00:00.000Z", "x": "é"}\n'
    path.write_text(line, encoding="utf-8")
    [(raw, record)] = list(read_events(path))
    assert raw == line.encode()
    assert record == json.loads(line)
