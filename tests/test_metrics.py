"""GET /metrics (SPEC §10.2): a known mix of requests through the real app and the fake upstream,
then the exposition parsed back with prometheus_client's own parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sparks.config import parse_config
from sparks.observe.metrics import RequestMetrics, attempt_outcome

from .conftest import AUTH, ROOT, make_config, read_events, upstream_url

CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def second(fake: Any, aiohttp_server: Any) -> Any:
    return await aiohttp_server(fake.create_app(["secondary"], name="up2"))


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(client: Any, headers: dict[str, str] | None = AUTH) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


def mix_config(tmp_path: Path, upstream: Any, second: Any, **observer: Any) -> Any:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / "notes.txt").write_text("limiter notes\n")
    data = {
        "observer": {"path": str(tmp_path / "events.jsonl"), "console": False, **observer},
        "backends": {
            "up": {
                "base_url": upstream_url(upstream),
                "models": ["fake-model", "fail-500", "fail-400"],
                "model_info": {"fake-model": {"price_in_per_mtok": 1.0, "price_out_per_mtok": 2.0}},
            },
            "up2": {"base_url": upstream_url(second)},
        },
        "aliases": {"smart": ["up/fail-500", "up2/secondary"]},
        "ghosts": [
            {
                "name": "scout",
                "tools": ["read_file", "list_dir", "search", "shell"],
                "read_only": True,
                "workspace": str(workspace),
            }
        ],
        "ghost_defaults": {"model": "up/fake-model", "sandbox": "none"},
    }
    return parse_config(data, None)


async def run_mix(client: Any, upstream: Any, fake: Any) -> None:
    """ok, upstream 4xx, 5xx with fallback, stream, ghost with two steps (one failing), an
    unlisted model id, a request without a key."""
    hello = [{"role": "user", "content": "hello there"}]
    ok = await client.post(CHAT, json={"model": "up/fake-model", "messages": hello}, headers=AUTH)
    assert ok.status == 200
    bad = await client.post(CHAT, json={"model": "up/fail-400", "messages": hello}, headers=AUTH)
    assert bad.status == 400
    fallback = await client.post(CHAT, json={"model": "smart", "messages": hello}, headers=AUTH)
    assert fallback.status == 200 and fallback.headers["X-Sparks-Fallback-From"] == "up/fail-500"
    body = {"model": "up/fake-model", "messages": hello, "stream": True}
    body["fake"] = {"chunk_delay_ms": 30}
    stream = await client.post(CHAT, json=body, headers=AUTH)
    assert stream.status == 200
    during = await scrape(client)  # headers are in, the body is still coming
    assert value(during, "sparks_active_streams", api="chat") == 1
    assert "data: [DONE]" in await stream.text()
    fake.queue_script(
        upstream.app,
        "fake-model",
        [
            {
                "tool_calls": [
                    {"name": "read_file", "arguments": {"path": "notes.txt"}},
                    {"name": "read_file", "arguments": {"path": "../outside.txt"}},
                ]
            },
            {"reply": "done: {last_tool_result}"},
        ],
    )
    ghost = await client.post(CHAT, json={"model": "sparks/scout", "messages": hello}, headers=AUTH)
    assert ghost.status == 200
    unlisted = await client.post(
        CHAT, json={"model": "up/fake-small", "messages": hello}, headers=AUTH
    )
    assert unlisted.status == 200
    no_key = await client.post(CHAT, json={"model": "up/fake-model", "messages": hello})
    assert no_key.status == 401


async def test_counters_after_a_known_mix_of_requests(
    sparks_client: Any, upstream: Any, second: Any, fake: Any, tmp_path: Path
) -> None:
    client = await sparks_client(mix_config(tmp_path, upstream, second))
    await run_mix(client, upstream, fake)
    m = await scrape(client)
    req = "sparks_requests_total"

    def requests(**labels: str) -> float:
        return value(m, req, **labels)

    assert requests(api="chat", route="backend", served_model="up/fake-model", status="200") == 2
    assert requests(api="chat", route="backend", model="up/fail-400", status="400") == 1
    assert requests(model="smart", route="alias", served_model="up2/secondary", status="200") == 1
    assert requests(route="ghost", served_model="sparks/scout", status="200") == 1
    # an id the catalog does not list is one bounded value, never the raw string
    assert requests(route="backend", model="other", served_model="other", status="200") == 1
    assert not [k for k in m if "fake-small" in str(k)]
    assert requests(api="none", route="none", status="401") == 1
    assert requests(api="chat") == 6
    assert requests(outcome="completed") == 6  # with the keyed mid-stream scrape
    assert (
        requests(outcome="rejected", status="400")
        == requests(outcome="rejected", status="401")
        == 1
    )
    assert requests(outcome="failed") == 0
    assert value(m, "sparks_fallbacks_total", fallback_from="up/fail-500") == 1
    assert value(m, "sparks_fallbacks_total", served_model="up2/secondary", model="smart") == 1

    assert value(m, "sparks_upstream_attempts_total", backend="up", outcome="http_5xx") == 1
    assert value(m, "sparks_upstream_attempts_total", backend="up", outcome="http_4xx") == 1
    assert value(m, "sparks_upstream_attempts_total", backend="up2", outcome="ok") == 1
    # ok, stream, two ghost turns, unlisted
    assert value(m, "sparks_upstream_attempts_total", backend="up", outcome="ok") == 5

    steps = "sparks_ghost_steps_total"
    assert value(m, steps, ghost="scout", tool="read_file", outcome="ok") == 1
    assert value(m, steps, ghost="scout", tool="read_file", outcome="error") == 1
    assert value(m, "sparks_ghost_step_duration_seconds_count", tool="read_file") == 2

    assert value(m, "sparks_active_streams") == 0
    assert value(m, "sparks_time_to_first_token_seconds_count", api="chat") == 1
    assert value(m, "sparks_request_duration_seconds_count", api="chat") == 6
    assert value(m, "sparks_rate_limited_total") == 0

    # tokens and cost are the sums of the terminal events' usage and cost: one source
    done = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.completed"]
    served = [e for e in done if e["served_model"] == "up/fake-model"]
    for kind in ("prompt", "completion"):
        expected = sum(e["usage"][f"{kind}_tokens"] for e in served)
        assert expected > 0
        got = value(m, "sparks_tokens_total", type=kind, served_model="up/fake-model")
        assert got == expected
        assert value(m, "sparks_tokens_total", type=kind, principal="self") == sum(
            e["usage"][f"{kind}_tokens"] for e in done if e["usage"]
        )
    cost = sum(e["cost"] for e in served)
    assert cost > 0
    assert value(m, "sparks_cost_total", served_model="up/fake-model") == pytest.approx(cost)
    assert value(m, "sparks_build_info") == 1


async def test_limiter_rejections_are_counted_apart_from_upstream_429s(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    cfg = make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        openai_api={"requests_per_minute": 1, "burst": 3},
        observer={"metrics_public": True},
    )
    client = await sparks_client(cfg)
    hello = [{"role": "user", "content": "hi"}]
    upstream_429 = await client.post(
        CHAT,
        json={"model": "up/fake-model", "messages": hello, "fake": {"status": 429}},
        headers=AUTH,
    )
    assert upstream_429.status == 429
    statuses = [
        (
            await client.post(
                CHAT, json={"model": "up/fake-model", "messages": hello}, headers=AUTH
            )
        ).status
        for _ in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
    m = await scrape(client, headers=None)  # public: the scrape itself takes no token
    assert value(m, "sparks_rate_limited_total", principal="self") == 2
    assert value(m, "sparks_requests_total", status="429", route="none") == 2
    assert value(m, "sparks_requests_total", status="429", route="backend") == 1


async def test_metrics_need_the_key_unless_public(
    sparks_client: Any, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await sparks_client(make_config(tmp_path))
    refused = await client.get("/metrics")
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "invalid_api_key"
    keyed = await scrape(client)
    assert value(keyed, "sparks_requests_total", status="401") == 1
    events = read_events(tmp_path / "events.jsonl")
    assert [e["path"] for e in events if e["event"] == "request.received"] == ["/metrics"] * 2

    public_dir = tmp_path / "public"
    public_dir.mkdir()
    public = await sparks_client(make_config(public_dir, observer={"metrics_public": True}))
    first = await scrape(public, headers=None)
    again = await scrape(public, headers=None)
    # like /health: no key, no events, so scraping does not count itself
    assert value(first, "sparks_requests_total") == value(again, "sparks_requests_total") == 0
    assert read_events(public_dir / "events.jsonl") == []
    other = await public.get("/v1/models")
    assert other.status == 401  # only /metrics became public


def test_flood_summaries_count_every_rejection_they_stand_for() -> None:
    metrics = RequestMetrics(lambda: {"up/m"})
    metrics.observe({"event": "request.received", "request_id": "r1", "api": None})
    metrics.observe({"event": "request.rejected", "request_id": "r1", "status": 401})
    metrics.observe(
        {"event": "request.rejected", "status": 401, "code": "invalid_api_key", "count": 37}
        | {"summary": True, "request_id": None}
    )
    samples = parse(metrics.exposition().decode())
    assert value(samples, "sparks_requests_total", status="401") == 38
    assert value(samples, "sparks_request_duration_seconds_count") == 0  # no latency known


def test_open_requests_are_bounded_and_release_their_stream_gauge() -> None:
    from sparks.observe import metrics as module

    metrics = RequestMetrics(lambda: set())
    for index in range(module.MAX_OPEN + 5):
        metrics.observe({"event": "request.received", "request_id": f"r{index}", "stream": True})
    samples = parse(metrics.exposition().decode())
    assert len(metrics._open) == module.MAX_OPEN
    assert value(samples, "sparks_active_streams") == module.MAX_OPEN


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, "ok"),
        (503, "HTTP 503: busy", "http_5xx"),
        (404, "HTTP 404: no such model", "http_4xx"),
        (None, "cannot connect to up at http://x: refused", "connect_error"),
        (None, "no answer from up within 600s", "timeout"),
        (None, "skipped: cooling down (3.0s left)", "skipped"),
        (200, "expected JSON, got text/html (12 bytes)", "invalid"),
    ],
)
def test_attempt_outcome_from_the_event(status: Any, error: Any, outcome: str) -> None:
    assert attempt_outcome({"status": status, "error": error}) == outcome


async def test_every_metric_the_docs_and_dashboard_name_is_exported(
    sparks_client: Any, upstream: Any, second: Any, fake: Any, tmp_path: Path
) -> None:
    client = await sparks_client(mix_config(tmp_path, upstream, second))
    await run_mix(client, upstream, fake)
    resp = await client.get("/metrics", headers=AUTH)
    families = {f.name for f in text_string_to_metric_families(await resp.text())}
    exported = set()
    for family in families:  # the names a query can use: counters end in _total
        exported |= {family, f"{family}_total", f"{family}_bucket", f"{family}_sum"}
        exported.add(f"{family}_count")
    for doc in ("metrics.md", "grafana-sparks.json"):
        named = set(re.findall(r"\bsparks_[a-z_]+[a-z]", (ROOT / "docs" / doc).read_text()))
        assert named, doc
        assert named <= exported, f"{doc} names metrics Sparks does not export: {named - exported}"
