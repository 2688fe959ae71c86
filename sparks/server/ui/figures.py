"""What the dashboard shows, computed from `LogIndex` rows (no I/O, no aiohttp).

`activity()` returns the object `sparks activity --json` prints for the same log and window,
built with the same `GroupStats`, plus `ttft_p95_ms` on each row and a time series.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sparks.observe.activity import GROUPINGS, GroupStats, merged, nearest_rank
from sparks.server.ui.log_index import RequestRow

SERIES_POINTS = 60
BASE_BUCKET_S = 10  # the finest bucket; every chart bucket is a whole number of these
BUCKET_SIZES_S = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
UI_PATH_PREFIX = "/ui"

_minute_epochs: dict[str, int] = {}


def epoch_s(ts: str | None) -> float | None:
    """Seconds since the epoch of a canonical observer `ts` (`2026-11-23T11:45:08.123Z`)."""
    if not ts or len(ts) != 24:
        return None
    minute = _minute_epochs.get(ts[:16])
    if minute is None:
        try:
            moment = datetime.strptime(ts[:16], "%Y-%m-%dT%H:%M")
        except ValueError:
            return None
        minute = calendar.timegm(moment.timetuple())
        if len(_minute_epochs) > 100_000:
            _minute_epochs.clear()
        _minute_epochs[ts[:16]] = minute
    try:
        return minute + int(ts[17:19]) + int(ts[20:23]) / 1000
    except ValueError:
        return None


def in_window(rows: list[RequestRow], since: str | None) -> Iterator[RequestRow]:
    """Rows whose `request.received` is at or after `since`, as `observe.activity` counts them
    (a row without a readable `ts` only counts when there is no window)."""
    for row in rows:
        if row.dead:
            continue
        if since is not None and (row.ts is None or row.ts < since):
            continue
        yield row


def bucket_size(span_s: float) -> int:
    for size in BUCKET_SIZES_S:
        if span_s / size <= SERIES_POINTS:
            return size
    return BUCKET_SIZES_S[-1] * max(1, int(span_s // (BUCKET_SIZES_S[-1] * SERIES_POINTS)) + 1)


class WindowFigures:
    """The activity of one window (`by`, `since`), extended as rows arrive: a row is added once
    it has finished; rows still open are remembered and added when they finish. Rows only ever
    arrive at the end of the index, so a refresh costs only the new and the open ones."""

    def __init__(self, by: str, since: str | None) -> None:
        if by not in GROUPINGS:
            raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
        self.by = by
        self.since = since
        self.groups: dict[str, GroupStats] = {}
        self.open: list[RequestRow] = []
        self.buckets: dict[int, list[int]] = {}  # BASE_BUCKET_S slot → [requests, errors, tokens]
        self.seen = 0  # rows looked at so far, counted from the start of the index

    def extend(self, rows: list[RequestRow], first: int = 0) -> WindowFigures:
        """Take in `rows[self.seen - first:]` (`first`: how many rows the index has forgotten
        from its front) and whatever open rows have finished since."""
        still_open = []
        for row in self.open:
            if row.outcome is None:
                still_open.append(row)
            else:
                self._add(row)
        self.open = still_open
        for row in in_window(rows[max(self.seen - first, 0) :], self.since):
            if row.outcome is None:
                self.open.append(row)
            else:
                self._add(row)
        self.seen = first + len(rows)
        return self

    def _add(self, row: RequestRow) -> None:
        key = row.group_key(self.by)
        stats = self.groups.get(key)
        if stats is None:
            stats = self.groups[key] = GroupStats(key)
        stats.add(row.terminal_record())
        stamp = epoch_s(row.ts)
        if stamp is not None:
            slot = self.buckets.setdefault(int(stamp // BASE_BUCKET_S), [0, 0, 0])
            slot[0] += 1
            slot[1] += row.outcome != "request.completed"
            if row.usage is not None:
                slot[2] += sum(v for v in row.usage if type(v) is int)

    def result(self, now: float | None = None) -> dict[str, Any]:
        """The `sparks activity --json` object, plus `ttft_p95_ms` per row and `series`."""
        ordered = sorted(self.groups.values(), key=lambda g: (-g.requests, g.key))
        start = epoch_s(self.since) if self.since is not None else None
        return {
            "by": self.by,
            "since": self.since,
            "groups": [_row(g) for g in ordered],
            "total": _row(merged(self.groups.values())),
            "in_flight": sum(1 for row in self.open if not row.dead),
            "series": series(self.buckets, start, time.time() if now is None else now),
        }


def activity(
    rows: list[RequestRow], by: str, since: str | None, now: float | None = None
) -> dict[str, Any]:
    """One window's figures from scratch (WindowFigures keeps them up to date instead)."""
    return WindowFigures(by, since).extend(rows).result(now)


def _row(stats: GroupStats) -> dict[str, Any]:
    row = stats.row()
    row["ttft_p95_ms"] = nearest_rank(sorted(stats.ttfts_ms), 95)
    return row


def series(buckets: dict[int, list[int]], start: float | None, end: float) -> dict[str, Any]:
    """Requests, errors and tokens per time bucket of the window (by `request.received`)."""
    if start is None:
        start = min(buckets) * BASE_BUCKET_S if buckets else end
    size = bucket_size(max(end - start, 1.0))
    first = int(start // size) * size
    count = max(1, int((end - first) // size) + 1)
    points = [
        {"t": first + i * size, "requests": 0, "errors": 0, "tokens": 0} for i in range(count)
    ]
    for slot, (requests, errors, tokens) in buckets.items():
        point = points[min(max(int((slot * BASE_BUCKET_S - first) // size), 0), count - 1)]
        point["requests"] += requests
        point["errors"] += errors
        point["tokens"] += tokens
    return {"bucket_s": size, "start": first, "points": points}


def request_summary(row: RequestRow) -> dict[str, Any]:
    """One row of the Live list."""
    tokens_in, tokens_out = row.usage if row.usage is not None else (None, None)
    return {
        "request_id": row.rid,
        "ts": row.ts,
        "path": row.path,
        "api": row.api,
        "principal": row.principal,
        "model": row.model,
        "route": f"{row.kind}:{row.target}" if row.kind else None,
        "served_model": row.served_model,
        "fallback_from": row.fallback_from,
        "outcome": row.outcome,
        "status": row.status,
        "code": row.code,
        "error": row.error,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": row.cost,
    }


def newest(rows: list[RequestRow], limit: int, include_ui: bool = False) -> list[dict[str, Any]]:
    out = []
    for row in reversed(rows):
        if len(out) >= limit:
            break
        if row.dead or (not include_ui and _is_ui(row)):
            continue
        out.append(request_summary(row))
    return out


def _is_ui(row: RequestRow) -> bool:
    path = row.path
    return isinstance(path, str) and (path == UI_PATH_PREFIX or path.startswith("/ui/"))


def fallbacks(rows: list[RequestRow], limit: int) -> list[dict[str, Any]]:
    picked = (r for r in reversed(rows) if r.fallback_from and not r.dead)
    return [request_summary(row) for row, _ in zip(picked, range(limit), strict=False)]


def ghost_runs(rows: list[RequestRow], limit: int) -> list[dict[str, Any]]:
    """The newest ghost runs, each step placed on the run's own clock (ms since received)."""
    runs = []
    for row in reversed(rows):
        if len(runs) >= limit:
            break
        if row.dead or (row.ghost is None and row.steps is None):
            continue
        begin = epoch_s(row.ts)
        steps = []
        for step, tool, summary, ok, duration, ts in row.steps or ():
            end = epoch_s(ts) if isinstance(ts, str) else None
            at_ms = None
            if begin is not None and end is not None:
                took = duration if isinstance(duration, int | float) else 0.0
                at_ms = round(max((end - begin) * 1000 - took, 0.0), 1)
            steps.append(
                {
                    "step": step,
                    "tool": tool,
                    "args_summary": summary,
                    "ok": ok,
                    "duration_ms": duration,
                    "at_ms": at_ms,
                }
            )
        runs.append({**request_summary(row), "ghost": row.ghost, "steps": steps})
    return runs


class WindowCache:
    """Recently asked windows, each kept up to date (`WindowFigures`); a window whose rows the
    index has forgotten (rotation, truncation) starts over."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.windows: dict[tuple[str, str | None], tuple[int, WindowFigures]] = {}

    def figures(
        self, rows: list[RequestRow], first: int, generation: int, by: str, since: str | None
    ) -> dict[str, Any]:
        cached = self.windows.pop((by, since), None)
        window = cached[1] if cached is not None and cached[0] == generation else None
        if window is None:
            window = WindowFigures(by, since)
        while len(self.windows) >= self.size:
            del self.windows[next(iter(self.windows))]
        self.windows[(by, since)] = (generation, window)
        return window.extend(rows, first).result()
