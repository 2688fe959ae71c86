"""`sparks activity` figures: one pass over raw log lines, grouped by model, ghost, principal or
backend. Pure: takes lines, returns numbers; reading files is `event_log`'s job.

What counts:
* A request counts when its `request.received` is at or after `since` and its terminal event
  (`request.completed` / `.failed` / `.rejected`) is in the log. Requests still open at the end
  are reported as `in_flight`, not in the rows.
* Group keys: `model` is the terminal event's `served_model` (what actually answered, e.g.
  `sparks/coder` for a classified `sparks` request), else the model the client asked for;
  `ghost` is `route.resolved.ghost`; `principal` is `request.received.principal`; `backend` is
  the backend of the request's *last* `upstream.attempt`: the one that served it (after any
  fallback) or failed last; for a ghost run, the backend of its final model call, since that is
  where its tokens went. Anything unknown (a 401 has no principal, a model listing no backend)
  is `-`.
* errors: `request.failed` and `request.rejected`, counted by `code`.
* tokens and cost: `usage.prompt_tokens` / `completion_tokens` and `cost` (null counts as 0)
  of `request.completed`, and of a failed request's event should it carry them (a stream that
  broke after the upstream had spent tokens).
* latency p50/p95: over completed requests only (an instant 401 or 429 would otherwise drag
  the median to zero); TTFT p50 over completed requests that have `ttft_ms` (streams).
  Percentiles are nearest-rank: the smallest value with at least p% of values at or below it,
  always a latency that really occurred.

Speed (a 50 MB log in well under a second): only terminal events are parsed in full. The event
name, `ts`, request id and the grouping field are found by byte search (key order is not
assumed); whenever the bytes leave any doubt (a key twice, an escape) the line is parsed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sparks.observe.event_log import line_ts, ts_key

GROUPINGS = ("model", "ghost", "principal", "backend")
RECEIVED = b"request.received"
TERMINAL = frozenset({b"request.completed", b"request.failed", b"request.rejected"})
_BASE_EVENTS = TERMINAL | {RECEIVED}
NEEDED_EVENTS = {
    "model": _BASE_EVENTS,
    "ghost": _BASE_EVENTS | {b"route.resolved"},
    "principal": _BASE_EVENTS,
    "backend": _BASE_EVENTS | {b"upstream.attempt"},
}
# the event (besides request.received) that carries each grouping's value, and that field's key
SOURCE_EVENTS = {
    "model": RECEIVED,
    "principal": RECEIVED,
    "ghost": b"route.resolved",
    "backend": b"upstream.attempt",
}
FIELD_KEYS = {by: f'"{by}":'.encode() for by in GROUPINGS}
REQUEST_ID_KEY = b'"request_id":'
EVENT_NEEDLE = b'"event":"'
NO_KEY = "-"
_decode = json.JSONDecoder().decode


def nearest_rank(sorted_values: list[float], percent: int) -> float | None:
    """The nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = (percent * len(sorted_values) + 99) // 100
    return sorted_values[max(rank, 1) - 1]


@dataclass
class GroupStats:
    key: str
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    upstream_calls: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.requests += 1
        completed = record.get("event") == "request.completed"
        if not completed:
            self.errors[str(record.get("code") or "unknown")] += 1
        usage = record.get("usage")
        if isinstance(usage, dict):
            self.tokens_in += _int(usage.get("prompt_tokens"))
            self.tokens_out += _int(usage.get("completion_tokens"))
        cost = record.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost += cost
        self.upstream_calls += _int(record.get("upstream_calls"))
        if not completed:
            return
        latency = record.get("latency_ms")
        if isinstance(latency, int | float):
            self.latencies_ms.append(float(latency))
        ttft = record.get("ttft_ms")
        if isinstance(ttft, int | float):
            self.ttfts_ms.append(float(ttft))

    def row(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        return {
            "key": self.key,
            "requests": self.requests,
            "errors": sum(self.errors.values()),
            "errors_by_code": dict(self.errors.most_common()),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "upstream_calls": self.upstream_calls,
            "p50_ms": nearest_rank(latencies, 50),
            "p95_ms": nearest_rank(latencies, 95),
            "ttft_p50_ms": nearest_rank(sorted(self.ttfts_ms), 50),
            "cost": round(self.cost, 8),
        }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class ActivityReport:
    by: str
    since: str | None
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    in_flight: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since,
            "groups": self.rows,
            "total": self.total,
            "in_flight": self.in_flight,
        }


class _Uncertain:
    """What `quick_value` returns when only a real parse can tell."""


UNCERTAIN = _Uncertain()


def quick_value(line: bytes, key: bytes) -> str | _Uncertain | None:
    """A string-or-null field straight from the bytes, when certain: the key occurs exactly
    once in the line (so it is the top-level one: a key inside a string value would have its
    quotes escaped) and holds null or a string without escapes. Else UNCERTAIN."""
    start = line.find(key)
    if start < 0 or line.find(key, start + len(key)) >= 0:
        return UNCERTAIN
    start += len(key)
    if line.startswith(b"null", start):
        return None
    if line[start : start + 1] != b'"':
        return UNCERTAIN
    end = line.find(b'"', start + 1)
    value = line[start + 1 : end]
    if end < 0 or b"\\" in value:
        return UNCERTAIN
    return value.decode()


def summarize(
    lines: Iterable[bytes], by: str = "model", since: str | None = None
) -> ActivityReport:
    """Aggregate raw log lines (oldest first) into per-group rows; `since` is a canonical ts."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}; got {by!r}")
    needed = NEEDED_EVENTS[by]
    since_bytes = since.encode() if since is not None else None
    open_requests: dict[str, str | None] = {}  # request id → group key known so far
    groups: dict[str, GroupStats] = {}
    source_event, field_key = SOURCE_EVENTS[by], FIELD_KEYS[by]
    for line in lines:
        # the event name straight from the bytes, when exactly one `"event":"` key is present
        name = None
        start = line.find(EVENT_NEEDLE) + len(EVENT_NEEDLE)
        if start >= len(EVENT_NEEDLE) and line.find(EVENT_NEEDLE, start) < 0:
            name = line[start : line.find(b'"', start)]
            if name not in needed:
                continue
        if name is not None and name not in TERMINAL and name != RECEIVED:
            # route / attempt of a request we track (which settles `since`): two fields suffice
            rid = quick_value(line, REQUEST_ID_KEY)
            value = quick_value(line, field_key)
            if isinstance(rid, str) and not isinstance(value, _Uncertain):
                if rid in open_requests:
                    open_requests[rid] = value
                continue
        checked = False
        if since_bytes is not None:
            ts = line_ts(line)
            if ts is not None:
                if ts < since_bytes:
                    continue
                checked = True
        if name == RECEIVED and (checked or since_bytes is None):
            rid = quick_value(line, REQUEST_ID_KEY)
            value = quick_value(line, field_key) if source_event == RECEIVED else None
            if isinstance(rid, str) and not isinstance(value, _Uncertain):
                open_requests[rid] = value
                continue
        try:
            record = _decode(line.decode())
        except ValueError:  # junk, a truncated line, or invalid UTF-8
            continue
        if not isinstance(record, dict):
            continue
        rid = record.get("request_id")
        if not isinstance(rid, str):
            continue
        event = record.get("event")
        if event == "request.received":
            if since is not None and not checked:
                ts_text = ts_key(record.get("ts"))
                if ts_text is None or ts_text < since:
                    continue
            open_requests[rid] = record.get(by) if by in ("model", "principal") else None
        elif rid not in open_requests:
            continue  # received before `since` (or not a request we track)
        elif event == "route.resolved" and by == "ghost":
            open_requests[rid] = record.get("ghost")
        elif event == "upstream.attempt" and by == "backend":
            open_requests[rid] = record.get("backend")
        elif event in ("request.completed", "request.failed", "request.rejected"):
            known = open_requests.pop(rid)
            if by == "model":
                known = record.get("served_model") or known
            key = str(known) if known else NO_KEY
            stats = groups.get(key)
            if stats is None:
                stats = groups[key] = GroupStats(key)
            stats.add(record)
    rows = sorted((g.row() for g in groups.values()), key=lambda r: (-r["requests"], r["key"]))
    return ActivityReport(by, since, rows, merged(groups.values()).row(), len(open_requests))


def merged(groups: Iterable[GroupStats], key: str = "total") -> GroupStats:
    """All groups as one (the table's total line)."""
    total = GroupStats(key)
    for stats in groups:
        total.requests += stats.requests
        total.errors.update(stats.errors)
        total.tokens_in += stats.tokens_in
        total.tokens_out += stats.tokens_out
        total.upstream_calls += stats.upstream_calls
        total.cost += stats.cost
        total.latencies_ms.extend(stats.latencies_ms)
        total.ttfts_ms.extend(stats.ttfts_ms)
    return total
