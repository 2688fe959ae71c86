"""Turning a served upstream answer into the client's response: JSON or an event-by-event stream."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from . import jsonfast
from .catalog import Catalog
from .errors import error_body
from .protocol import DONE_EVENT, sse_event
from .reasoning import normalize_message
from .stream_relay import ChunkRelay, StreamGarbage, iter_lines
from .tracking import RequestRecord
from .upstream import Served

CLIENT_WRITE_TIMEOUT_S = 120.0  # a client that reads nothing for this long is cut off


def route_headers(served: Served, record: RequestRecord) -> dict[str, str]:
    headers = {"X-Sparks-Route": f"{served.target.kind}:{served.target.sparks_id}"}
    if served.fallback_from:
        headers["X-Sparks-Fallback-From"] = served.fallback_from
    sparks_ms = max(0.0, record.elapsed_ms() - served.upstream_ms)
    headers["Server-Timing"] = f"sparks;dur={sparks_ms:.2f}, upstream;dur={served.upstream_ms:.2f}"
    return headers


def cost_of(catalog: Catalog, served: Served, usage: dict[str, Any] | None) -> float | None:
    if not usage or not served.target.backend:
        return None
    info = catalog.model_info(served.target.backend, served.target.upstream_model or "")
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    return round((prompt * info.price_in_per_mtok + completion * info.price_out_per_mtok) / 1e6, 8)


def json_answer(
    catalog: Catalog,
    served: Served,
    record: RequestRecord,
    include_trace: bool,
) -> web.Response:
    """A non-streaming upstream JSON answer with `model` rewritten to the Sparks id."""
    payload = served.payload
    record.served_model = served.target.sparks_id
    record.fallback_from = served.fallback_from
    if isinstance(payload, dict):
        if "model" in payload:
            payload["model"] = served.target.sparks_id
        usage = payload.get("usage")
        if isinstance(usage, dict):
            record.usage = usage
            record.cost = cost_of(catalog, served, usage)
        for choice in payload.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                normalize_message(choice["message"])
        if include_trace:
            payload["route_trace"] = [a.trace() for a in served.attempts]
    headers = route_headers(served, record)
    record.complete(200, content=_answer_text(payload))
    return web.Response(
        body=jsonfast.dumps(payload),
        content_type="application/json",
        headers=headers,
    )


def _answer_text(payload: Any) -> Any:
    try:
        return payload["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None


async def stream_answer(
    request: web.Request,
    catalog: Catalog,
    served: Served,
    record: RequestRecord,
    include_usage: bool,
) -> web.StreamResponse:
    """Forward an upstream SSE stream chunk by chunk; a mid-stream failure ends it with an error."""
    assert served.response is not None
    record.served_model = served.target.sparks_id
    record.fallback_from = served.fallback_from
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **route_headers(served, record),
        },
    )
    relay = ChunkRelay(served.target.sparks_id, include_usage)
    failure: str | None = None
    try:
        await response.prepare(request)
        try:
            async for line in iter_lines(served.response.content.iter_any()):
                out = relay.feed_line(line)
                if out is not None:
                    if relay.chunks == 1:
                        record.mark_first_byte()
                    async with asyncio.timeout(CLIENT_WRITE_TIMEOUT_S):
                        await response.write(out)
                if relay.done:
                    break
        except StreamGarbage as exc:
            failure = str(exc)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            failure = f"upstream stream broke: {type(exc).__name__}"
        except TimeoutError:
            failure = "upstream stream stalled past timeout_s, or the client stopped reading"
        if failure is None and not relay.done:
            failure = "upstream stream ended before [DONE]"
        if failure is None:
            tail = relay.finish()
            if tail is not None:
                await response.write(tail)
        record.usage = relay.usage
        record.cost = cost_of(catalog, served, relay.usage)
        if failure is None:
            record.complete(200)
        else:
            record.fail(200, "upstream_error", failure)
            message = f"{served.target.sparks_id}: {failure}"
            await response.write(sse_event(error_body(502, "upstream_error", message)))
        await response.write(DONE_EVENT)
    finally:
        served.close()
    return response
