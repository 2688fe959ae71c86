"""Chat completions through the real Sparks app to the real fake upstream, with real clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from .conftest import API_KEY, AUTH, make_config, read_events, upstream_url


async def start(sparks_client: Any, upstream: Any, tmp_path: Path, **sections: Any) -> Any:
    config = make_config(tmp_path, {"up": upstream_url(upstream)}, **sections)
    return await sparks_client(config)


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0)


async def test_openai_sdk_non_streaming_gets_upstream_answer(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    async with sdk(client) as oa:
        raw = await oa.chat.completions.with_raw_response.create(
            model="up/fake-model", messages=[{"role": "user", "content": "hello there"}]
        )
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: hello there"
    assert answer.model == "up/fake-model"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert raw.headers["X-Sparks-Route"] == "backend:up/fake-model"
    assert raw.headers["X-Request-Id"].startswith("req_")
    assert raw.headers["Server-Timing"].startswith("sparks;dur=")
    assert "upstream;dur=" in raw.headers["Server-Timing"]


async def test_openai_sdk_streaming_reassembles_answer_without_usage(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    async with sdk(client) as oa:
        stream = await oa.chat.completions.create(
            model="up/fake-model",
            messages=[{"role": "user", "content": "one two three four"}],
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three four"
    assert all(c.usage is None for c in chunks)
    assert {c.model for c in chunks} == {"up/fake-model"}
    # Sparks asked the upstream for usage even though the client did not
    recorded = upstream.app[fake_key(upstream, "RECORDED")]
    assert recorded[-1].json["stream_options"] == {"include_usage": True}


def fake_key(upstream: Any, name: str) -> Any:
    import sys

    return getattr(sys.modules["sparks_scripts_fake_upstream"], name)


async def test_streaming_usage_chunk_only_when_client_asks(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    async with sdk(client) as oa:
        stream = await oa.chat.completions.create(
            model="up/fake-model",
            messages=[{"role": "user", "content": "count my tokens"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage.completion_tokens > 0
    events = read_events(tmp_path / "events.jsonl")
    done = [e for e in events if e["event"] == "request.completed"][-1]
    assert done["usage"]["total_tokens"] == usage_chunks[0].usage.total_tokens
    assert done["ttft_ms"] is not None


async def test_tool_calls_and_unknown_fields_reach_upstream_unchanged(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body = {
        "model": "up/fake-model",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ],
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "seed": 7,
        "logprobs": True,
        "n": 1,
        "x_vendor_field": {"nested": [1, 2, 3]},
    }
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status == 200
    forwarded = upstream.app[fake_key(upstream, "RECORDED")][-1]
    assert forwarded.json == {**body, "model": "fake-model"}
    assert "authorization" not in {k.lower() for k in forwarded.headers}


async def test_streamed_tool_call_deltas_keep_index_id_and_name(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    async with sdk(client) as oa:
        stream = await oa.chat.completions.create(
            model="up/fake-model",
            messages=[{"role": "user", "content": "weather?"}],
            stream=True,
            extra_body={
                "fake": {
                    "tool_calls": [
                        {"name": "get_weather", "arguments": {"city": "Paris"}},
                        {"name": "get_time", "arguments": {"tz": "CET"}},
                    ]
                }
            },
        )
        chunks = [c async for c in stream]
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function.name or "") if delta.function else ""
            entry["args"] += (delta.function.arguments or "") if delta.function else ""
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"city": "Paris"}
    assert calls[1]["name"] == "get_time" and calls[0]["id"] != calls[1]["id"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_bare_model_id_served_by_one_backend_routes_there(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "fake-small", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
    )
    assert resp.status == 200
    assert (await resp.json())["model"] == "up/fake-small"
    assert resp.headers["X-Sparks-Route"] == "backend:up/fake-small"


async def test_models_list_has_ghosts_and_backend_models_with_metadata(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.get("/v1/models", headers=AUTH)
    data = await resp.json()
    ids = [m["id"] for m in data["data"]]
    assert ids[:3] == ["sparks", "sparks/coder", "sparks/scout"]
    assert "up/fake-model" in ids and "up/fake-small" in ids
    entry = next(m for m in data["data"] if m["id"] == "up/fake-model")
    assert entry["object"] == "model"
    assert entry["sparks"]["backend"] == "up" and entry["sparks"]["local"] is True
    one = await client.get("/v1/models/up/fake-model", headers=AUTH)
    assert (await one.json())["id"] == "up/fake-model"
    page = await client.get("/v1/models?kind=backend&limit=1&offset=1", headers=AUTH)
    assert [m["id"] for m in (await page.json())["data"]] == ["up/fake-small"]


async def test_health_is_public_and_writes_no_event(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.get("/health")
    body = await resp.json()
    assert body["status"] == "ok" and "version" in body and body["uptime_s"] >= 0
    assert resp.headers["X-Request-Id"]
    assert read_events(tmp_path / "events.jsonl") == []


async def test_every_request_leaves_one_terminal_event_in_order(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    ok = await client.post(
        "/v1/chat/completions",
        json={"model": "up/fake-model", "messages": [{"role": "user", "content": "x"}]},
        headers=AUTH,
    )
    bad = await client.post("/v1/chat/completions", data=b"{", headers=AUTH)
    noauth = await client.get("/v1/models")
    events = read_events(tmp_path / "events.jsonl")
    by_request: dict[str, list[str]] = {}
    for event in events:
        by_request.setdefault(event["request_id"], []).append(event["event"])
    rid = ok.headers["X-Request-Id"]
    assert by_request[rid] == [
        "request.received",
        "route.resolved",
        "upstream.attempt",
        "request.completed",
    ]
    assert by_request[bad.headers["X-Request-Id"]] == ["request.received", "request.rejected"]
    assert by_request[noauth.headers["X-Request-Id"]] == ["request.received", "request.rejected"]
    text = (tmp_path / "events.jsonl").read_text()
    assert API_KEY not in text and "echo: x" not in text  # no secrets, no content by default
    assert (tmp_path / "events.jsonl").stat().st_mode & 0o777 == 0o600
    first = events[0]
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24 and first["level"] == "info"


async def test_log_content_true_records_messages_and_answer(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path, observer={"log_content": True})
    await client.post(
        "/v1/chat/completions",
        json={"model": "up/fake-model", "messages": [{"role": "user", "content": "secret plan"}]},
        headers=AUTH,
    )
    text = (tmp_path / "events.jsonl").read_text()
    assert "secret plan" in text and "echo: secret plan" in text
