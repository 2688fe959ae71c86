"""Reading a request body: bounded in time only while it is still arriving."""

from __future__ import annotations

from aiohttp import web

from sparks.protocol import read_body


async def request_bytes(request: web.Request) -> bytes:
    """The whole body. One already received in full (most JSON requests arrive with their
    headers) is read without arming a timer; one still arriving is bounded (read_body)."""
    if request.content.is_eof():
        return await request.read()
    return await read_body(request.read())
