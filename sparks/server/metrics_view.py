"""GET /metrics: the Prometheus text exposition of this app's registry (SPEC §10.2).

Key required, like every other path, unless `[observer] metrics_public = true` (then the
middlewares treat it as a public path, like /health: no key, no limiter, no events)."""

from __future__ import annotations

from aiohttp import web

from sparks.server.state import METRICS, RECORD

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Prometheus accepts


async def metrics(request: web.Request) -> web.Response:
    record = request.get(RECORD)
    if record is not None:  # a keyed scrape is a request like any other (SPEC §8)
        record.received()
    return web.Response(
        body=request.app[METRICS].exposition(), headers={"Content-Type": CONTENT_TYPE}
    )
