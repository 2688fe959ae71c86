"""The minimal aiohttp pass-through that scripts/bench.py measures Sparks against.

    python scripts/bench_proxy.py PORT UPSTREAM_BASE_URL   # 0 picks a free port

The machine's limit for a Python aiohttp proxy: one pooled session, bytes in, bytes out. JSON
answers are read whole and sent with a Content-Length (the cheapest way); event streams are
written back chunk by chunk as they arrive. It always runs on asyncio's own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
from aiohttp import web


async def serve_minimal_proxy(port: int, upstream: str) -> None:
    """Forward /v1/* to `upstream` until SIGINT or SIGTERM."""
    base = upstream.rstrip("/")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
        auto_decompress=False,
    )

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        body = await request.read()
        url = f"{base}/{request.match_info['tail']}"
        async with session.request(
            request.method, url, params=request.query, data=body, headers=headers
        ) as up:
            kind = up.headers.get("Content-Type", "application/octet-stream")
            if not kind.startswith("text/event-stream"):
                return web.Response(
                    status=up.status, body=await up.read(), headers={"Content-Type": kind}
                )
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": kind})
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(
            f"minimal proxy listening on http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True
        )
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        await session.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A minimal aiohttp pass-through proxy.")
    parser.add_argument("port", type=int)
    parser.add_argument("upstream", help="base URL, e.g. http://127.0.0.1:9100/v1")
    args = parser.parse_args(argv)
    asyncio.run(serve_minimal_proxy(args.port, args.upstream))


if __name__ == "__main__":
    main()
