"""GET /v1/observer/events: every observer event as it is written, as server-sent events.

Each subscriber has a bounded queue filled without waiting; one that falls behind is dropped
(told so in a last event) so a stalled reader can never slow or block the request path.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import web

from sparks.errors import error_body
from sparks.server.state import OBSERVER, RECORD, RESPONDER

HEARTBEAT_S = 15.0
SEND_BUFFER_BYTES = 64 * 1024


async def observer_events(request: web.Request) -> web.StreamResponse:
    record = request[RECORD]
    record.received()
    event_name = request.query.get("event") or None
    request_id = request.query.get("request_id") or None

    def matches(event: dict[str, Any]) -> bool:
        if event_name and event.get("event") != event_name:
            return False
        return not request_id or event.get("request_id") == request_id

    observer = request.app[OBSERVER]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    responder = request[RESPONDER]
    responder.response = response
    await response.prepare(request)
    subscriber = observer.subscribe(matches)
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:  # bound what a stalled reader can pin in kernel buffers
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        # a dropped subscriber may be blocked writing to a reader that never reads: cut it off
        subscriber.on_drop = transport.abort
    try:
        await response.write(b": subscribed to sparks observer events\n\n")
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    event = await subscriber.queue.get()
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if event is None:
                break
            data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            await response.write(f"event: {event['event']}\ndata: {data}\n\n".encode())
        if subscriber.dropped:
            message = "this subscriber fell behind and was dropped; reconnect to resume"
            body = error_body(503, "subscriber_too_slow", message)
            await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        responder.finish(response)
        await response.write_eof()
    except asyncio.CancelledError:
        responder.finish(response)  # the subscriber leaving is how this stream normally ends
        raise
    finally:
        observer.unsubscribe(subscriber)
    return response
