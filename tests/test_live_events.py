"""The live observer stream: events in order per request, filters, and stalled subscribers."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from sparks.server.state import OBSERVER

from .conftest import AUTH, make_config, upstream_url

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


async def read_events(resp: Any, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
                if len(events) >= count:
                    break
    return events


async def test_subscriber_sees_each_requests_events_in_order(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await sparks_client(make_config(tmp_path, {"up": upstream_url(upstream)}))
    sub = await client.get("/v1/observer/events", headers=AUTH)
    assert sub.status == 200 and sub.content_type == "text/event-stream"
    first_line = await sub.content.readline()
    assert first_line.startswith(b":")
    ids = []
    for _ in range(2):
        resp = await client.post(
            CHAT, json={"model": "up/fake-model", "messages": HELLO}, headers=AUTH
        )
        ids.append(resp.headers["X-Request-Id"])
    events = await read_events(sub, 8)
    for rid in ids:
        names = [e["event"] for e in events if e.get("request_id") == rid]
        assert names == [
            "request.received",
            "route.resolved",
            "upstream.attempt",
            "request.completed",
        ]
    sub.close()


async def test_filters_by_event_and_request_id(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await sparks_client(make_config(tmp_path, {"up": upstream_url(upstream)}))
    sub = await client.get("/v1/observer/events?event=request.completed", headers=AUTH)
    await sub.content.readline()
    await client.post(CHAT, json={"model": "up/fake-model", "messages": HELLO}, headers=AUTH)
    await client.post(CHAT, data=b"{", headers=AUTH)
    events = await read_events(sub, 1)
    assert [e["event"] for e in events] == ["request.completed"]
    sub.close()


async def test_stalled_subscriber_is_dropped_and_never_blocks_requests(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    """A raw socket with a tiny receive buffer subscribes and never reads."""
    config = make_config(
        tmp_path, {"up": upstream_url(upstream)}, openai_api={"requests_per_minute": 0}
    )
    client = await sparks_client(config)
    observer = client.app[OBSERVER]
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", client.port))
    raw.sendall(
        b"GET /v1/observer/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\n\r\n".encode()
    )
    for _ in range(100):
        if observer.subscribers:
            break
        await asyncio.sleep(0.01)
    assert len(observer.subscribers) == 1
    # ~2000 events: far more than the subscriber's queue and buffers hold. If the request path
    # waited on this reader the loop would hang; the timeout is a liveness guard, not a speed test.
    async with asyncio.timeout(60):
        for _ in range(500):
            resp = await client.post(
                CHAT, json={"model": "up/fake-model", "messages": HELLO}, headers=AUTH
            )
            assert resp.status == 200
            resp.release()
    assert len(observer.subscribers) == 0  # dropped, not waited for
    raw.settimeout(5)
    received = 0
    try:
        while chunk := raw.recv(65536):  # until the server cuts the connection off
            received += len(chunk)
    except ConnectionResetError:
        pass
    raw.close()
    assert received > 0
