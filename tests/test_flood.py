"""The log flood bound (SPEC §8, issue 10 row 14): unauthenticated rejections are logged one by
one only up to a few per second; the rest become one summary line per interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparks.observe.flood import BURST, RejectionFlood
from sparks.server.state import OBSERVER

from .conftest import AUTH, make_config, post_chat, read_events, upstream_url


def test_the_flood_admits_a_burst_then_counts_and_summarises() -> None:
    lines: list[dict[str, Any]] = []
    now = [0.0]
    flood = RejectionFlood(lambda event, **f: lines.append({"event": event, **f}), lambda: now[0])
    admitted = sum(flood.admit(401, "invalid_api_key") for _ in range(100))
    assert admitted == BURST
    now[0] += 3.0  # three seconds refill three tokens
    assert sum(flood.admit(401, "invalid_api_key") for _ in range(10)) == 3
    flood.flush()
    (summary,) = lines
    assert summary["count"] == 100 - BURST + 7
    assert summary["code"] == "invalid_api_key" and summary["summary"] is True


async def test_three_hundred_keyless_requests_write_a_bounded_log_and_lose_no_count(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await sparks_client(make_config(tmp_path, {"up": upstream_url(upstream)}))
    for _ in range(300):
        resp = await client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
    resp = await post_chat(client)  # an authenticated request is logged as always
    assert resp.status == 200
    client.app[OBSERVER].flood.flush()
    events = read_events(tmp_path / "events.jsonl")
    rejected = [e for e in events if e["event"] == "request.rejected"]
    individual = [e for e in rejected if not e.get("summary")]
    summarised = sum(e["count"] for e in rejected if e.get("summary"))
    assert len(individual) <= BURST + 5  # a few more may refill while the loop runs
    assert len(individual) + summarised == 300
    assert len(events) < 2 * (BURST + 5) + 10
    assert [e["event"] for e in events][-1] == "request.rejected"
    assert any(e["event"] == "request.completed" for e in events)
    assert (tmp_path / "events.jsonl").stat().st_size < 20_000
    assert AUTH["Authorization"].split()[1] not in (tmp_path / "events.jsonl").read_text()
