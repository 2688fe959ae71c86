"""`activity` figures on a hand-built log whose numbers are worked out below."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sparks.observe.activity import UNCERTAIN, nearest_rank, quick_value, summarize
from sparks.observe.event_log import format_ts, iter_raw_lines, log_files

from .conftest import AUTH, load_script, make_config, upstream_url
from .test_event_log import NOW, event_line

T0 = NOW
SINCE = format_ts(T0 - timedelta(minutes=1))


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def received(rid: str, t: float, model: str | None, principal: str | None = "self") -> str:
    return event_line(
        "request.received",
        at(t),
        rid,
        method="POST",
        path="/v1/chat/completions",
        principal=principal,
        model=model,
        stream=False,
    )


def attempt(rid: str, t: float, backend: str, status: int | None) -> str:
    return event_line(
        "upstream.attempt", at(t), rid, backend=backend, upstream_model="m", status=status
    )


def route(rid: str, t: float, ghost: str | None = None) -> str:
    return event_line(
        "route.resolved", at(t), rid, kind="ghost" if ghost else "backend", ghost=ghost
    )


def completed(
    rid: str,
    t: float,
    latency: float,
    tokens: tuple[int, int] | None,
    cost: float | None,
    served: str | None,
    ttft: float | None = None,
) -> str:
    usage = None
    if tokens:
        usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]}
        usage["total_tokens"] = sum(tokens)
    return event_line(
        "request.completed",
        at(t),
        rid,
        status=200,
        latency_ms=latency,
        ttft_ms=ttft,
        served_model=served,
        usage=usage,
        cost=cost,
    )


def ended(event: str, rid: str, t: float, status: int, code: str, latency: float) -> str:
    return event_line(
        event,
        at(t),
        rid,
        status=status,
        code=code,
        error="…",
        latency_ms=latency,
        served_model=None,
    )


OLLAMA, ROUTER = "ollama/qwen3:8b", "openrouter/x"
LOG = [
    event_line("server.started", at(-7200), bind="127.0.0.1:8787"),
    # r7: received before the window, finished inside it → not counted
    received("r7", -3600, OLLAMA),
    attempt("r7", -3599, "ollama", 200),
    received("r1", 0, OLLAMA),
    received("r2", 1, ROUTER),
    route("r1", 0.1),
    route("r2", 1.1),
    attempt("r1", 0.2, "ollama", 200),
    completed("r7", 2, 3_600_000, (7, 7), 7.0, OLLAMA),
    completed("r1", 2, 100, (10, 5), 0.0, OLLAMA),
    attempt("r2", 2, "openrouter", 200),
    completed("r2", 3, 300, (100, 50), 0.002, ROUTER, ttft=50),
    # r3: a classified ghost run with two model calls and a tool step; ghost cost is null
    received("r3", 4, "sparks", "cursor"),
    route("r3", 4.1, ghost="coder"),
    attempt("r3", 5, "ollama", 200),
    event_line("ghost.step", at(5.1), "r3", ghost="coder", step=1, tool="read_file", ok=True),
    attempt("r3", 6, "ollama", 200),
    completed("r3", 6, 2000, (1000, 200), None, "sparks/coder"),
    # r4: alias fallback groq 503 → ollama
    received("r4", 7, "fast", "cursor"),
    route("r4", 7.1),
    attempt("r4", 7.2, "groq", 503),
    attempt("r4", 7.5, "ollama", 200),
    completed("r4", 8, 500, (20, 10), 0.0, OLLAMA, ttft=120),
    # r5: wrong key, no principal, never routed
    received("r5", 9, OLLAMA, None),
    ended("request.rejected", "r5", 9, 401, "invalid_api_key", 0.5),
    # r6: upstream 502
    received("r6", 10, ROUTER),
    route("r6", 10.1),
    attempt("r6", 10.5, "openrouter", 502),
    ended("request.failed", "r6", 11, 502, "upstream_error", 800),
    # r8: still in flight
    received("r8", 12, OLLAMA),
    "this line is not JSON\n",
    event_line("server.stopped", at(13)),
]


def rows_by_key(report: Any) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in report.rows}


def lines(log: list[str] = LOG) -> list[bytes]:
    return [line.encode() for line in log]


def test_nearest_rank_percentiles() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([5.0], 95) == 5.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert nearest_rank([float(v) for v in range(1, 11)], 95) == 10.0
    assert nearest_rank([float(v) for v in range(1, 21)], 95) == 19.0
    assert nearest_rank([float(v) for v in range(1, 101)], 50) == 50.0


def test_by_model_uses_served_model_else_requested() -> None:
    report = summarize(lines(), "model", SINCE)
    rows = rows_by_key(report)
    assert list(rows) == [OLLAMA, ROUTER, "sparks/coder"]  # by request count, then key
    assert rows[OLLAMA] == {
        "key": OLLAMA,
        "requests": 3,  # r1, r4 (served after fallback), r5 (rejected: the requested model)
        "errors": 1,
        "errors_by_code": {"invalid_api_key": 1},
        "tokens_in": 30,
        "tokens_out": 15,
        "upstream_calls": 0,
        "p50_ms": 100.0,  # completed only: [100, 500]
        "p95_ms": 500.0,
        "ttft_p50_ms": 120.0,
        "cost": 0.0,
    }
    assert rows[ROUTER] == {
        "key": ROUTER,
        "requests": 2,
        "errors": 1,
        "errors_by_code": {"upstream_error": 1},
        "tokens_in": 100,
        "tokens_out": 50,
        "upstream_calls": 0,
        "p50_ms": 300.0,
        "p95_ms": 300.0,
        "ttft_p50_ms": 50.0,
        "cost": 0.002,
    }
    coder = rows["sparks/coder"]
    assert (coder["requests"], coder["tokens_in"], coder["tokens_out"]) == (1, 1000, 200)
    assert (coder["p50_ms"], coder["ttft_p50_ms"], coder["cost"]) == (2000.0, None, 0.0)
    assert report.total == {
        "key": "total",
        "requests": 6,
        "errors": 2,
        "errors_by_code": {"invalid_api_key": 1, "upstream_error": 1},
        "tokens_in": 1130,
        "tokens_out": 265,
        "upstream_calls": 0,
        "p50_ms": 300.0,  # [100, 300, 500, 2000]: rank ceil(2) = 2
        "p95_ms": 2000.0,  # rank ceil(3.8) = 4
        "ttft_p50_ms": 50.0,  # [50, 120]: rank 1
        "cost": 0.002,
    }
    assert report.in_flight == 1


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("ghost", {"-": 5, "coder": 1}),
        ("principal", {"self": 3, "cursor": 2, "-": 1}),
        ("backend", {"ollama": 3, "openrouter": 2, "-": 1}),
    ],
)
def test_other_groupings_count_requests(by: str, expected: dict[str, int]) -> None:
    rows = rows_by_key(summarize(lines(), by, SINCE))
    assert {key: row["requests"] for key, row in rows.items()} == expected


def test_backend_is_the_last_attempt_so_fallbacks_and_ghosts_land_where_they_ran() -> None:
    rows = rows_by_key(summarize(lines(), "backend", SINCE))
    assert rows["ollama"]["tokens_in"] == 10 + 1000 + 20  # r1, ghost r3, fallback r4
    assert rows["openrouter"]["errors_by_code"] == {"upstream_error": 1}
    assert rows["-"]["errors_by_code"] == {"invalid_api_key": 1}


def test_without_since_every_finished_request_counts() -> None:
    report = summarize(lines(), "model", None)
    assert rows_by_key(report)[OLLAMA]["requests"] == 4  # r7 too
    assert report.total["tokens_in"] == 1137


def test_a_window_after_everything_is_empty() -> None:
    report = summarize(lines(), "model", format_ts(at(3600)))
    assert (report.rows, report.total["requests"], report.in_flight) == ([], 0, 0)


def test_logged_content_that_looks_like_keys_does_not_confuse_the_fast_path() -> None:
    decoy = [
        {"role": "user", "content": "hi", "event": "ghost.step", "ts": "1999-01-01T00:00:00.000Z"}
    ]
    log = [
        event_line("request.received", at(0), "r1", principal="self", model=OLLAMA, messages=decoy),
        completed("r1", 1, 100, (1, 1), 0.0, OLLAMA),
    ]
    report = summarize(lines(log), "principal", SINCE)
    assert rows_by_key(report)["self"]["requests"] == 1


def test_tokens_and_cost_on_a_failed_request_count_but_not_its_latency() -> None:
    failed = event_line(
        "request.failed",
        at(3),
        "r1",
        status=200,
        code="upstream_error",
        latency_ms=9000.0,
        usage={"prompt_tokens": 40, "completion_tokens": 4},
        cost=0.5,
    )
    report = summarize(lines([received("r1", 0, OLLAMA), failed]), "model", SINCE)
    row = rows_by_key(report)[OLLAMA]
    assert (row["errors"], row["tokens_in"], row["tokens_out"], row["cost"]) == (1, 40, 4, 0.5)
    assert row["p50_ms"] is None


def test_unknown_grouping_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="--by must be one of"):
        summarize([], "colour")


def test_generated_log_is_consistent(tmp_path: Path) -> None:
    """The synthetic log: every request finishes, and every grouping sees the same total."""
    make_event_log = load_script("make_event_log")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(make_event_log.generate_lines(200_000, 7, 2.0, NOW)))
    compact = list(iter_raw_lines(log_files(path)))
    # the same events spaced out (`"key": value`): no byte-search shortcut applies, all parsed
    spaced = [(json.dumps(json.loads(line)) + "\n").encode() for line in compact]
    since = format_ts(NOW - timedelta(hours=1))
    totals = set()
    for by in ("model", "ghost", "principal", "backend"):
        report = summarize(compact, by, None)
        assert report.in_flight == 0
        totals.add((report.total["requests"], report.total["errors"], report.total["tokens_in"]))
        windowed = summarize(compact, by, since)
        assert windowed.as_dict() == summarize(spaced, by, since).as_dict()
        assert 0 < windowed.total["requests"] < report.total["requests"]
    assert len(totals) == 1
    assert next(iter(totals))[0] > 50


def test_quick_value_only_answers_when_certain() -> None:
    key = b'"backend":'
    assert quick_value(b'{"backend":"ollama","event":"upstream.attempt"}', key) == "ollama"
    assert quick_value(b'{"backend":null,"event":"x"}', key) is None
    for uncertain in (
        b'{"event":"x"}',  # absent
        b'{"backend":"a\\"b"}',  # escaped
        b'{"backend":null,"x":{"backend":"b"}}',  # twice: which one is top-level?
        b'{"backend":7}',
        b'{"backend":"unterminated',
    ):
        assert quick_value(uncertain, key) is UNCERTAIN, uncertain


async def test_figures_from_a_real_server_log(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    """The real app's events, not hand-written ones: a call, a stream, a 401, and an unknown
    model that the default `unknown_model = "classify"` hands to a ghost."""
    config = make_config(tmp_path, {"up": upstream_url(upstream)})
    client = await sparks_client(config)
    body = {"model": "up/fake-model", "messages": [{"role": "user", "content": "one two"}]}
    assert (await client.post("/v1/chat/completions", json=body, headers=AUTH)).status == 200
    streamed = await client.post(
        "/v1/chat/completions", json={**body, "stream": True}, headers=AUTH
    )
    assert streamed.status == 200
    await streamed.read()
    assert (await client.post("/v1/chat/completions", json=body)).status == 401
    unknown = {**body, "model": "nope/none"}
    assert (await client.post("/v1/chat/completions", json=unknown, headers=AUTH)).status == 200
    lines = list(iter_raw_lines(log_files(tmp_path / "events.jsonl")))
    report = summarize(lines, "model", None)
    rows = rows_by_key(report)
    assert {key: row["requests"] for key, row in rows.items()} == {
        "up/fake-model": 2,
        "sparks/coder": 1,
        "-": 1,  # the 401 is refused before the body (and its model) is read
    }
    served = rows["up/fake-model"]
    assert served["errors"] == 0 and served["tokens_in"] > 0 and served["tokens_out"] > 0
    assert served["ttft_p50_ms"] is not None  # the stream
    assert rows["-"]["errors_by_code"] == {"invalid_api_key": 1}
    assert (report.total["requests"], report.in_flight) == (4, 0)
    by_backend = rows_by_key(summarize(lines, "backend", None))
    assert {key: row["requests"] for key, row in by_backend.items()} == {"up": 3, "-": 1}
    by_ghost = rows_by_key(summarize(lines, "ghost", None))
    assert {key: row["requests"] for key, row in by_ghost.items()} == {"-": 3, "coder": 1}
