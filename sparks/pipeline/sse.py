"""The one reader of upstream server-sent events, used by the relay and by ghost model turns.

A stream is whole only when it ends with `data: [DONE]`. Everything else that can go wrong after
it began (a line that is not JSON, an event that is not a chunk object, an `{"error": …}` event,
a broken or stalled connection, a cut before `[DONE]`) raises `StreamBroken`, the same way for
both readers, so neither can mistake a failure for a truncated success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sparks import jsonfast

MAX_LINE_BYTES = 8 * 1024 * 1024
DONE = b"[DONE]"


class StreamBroken(Exception):
    """The upstream stream failed after it began; the message says how, briefly."""


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Split a byte stream on newlines as data arrives (no fixed readline buffer limit)."""
    buffer = b""
    async for data in chunks:
        buffer = buffer + data if buffer else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            yield buffer[start:end]
            start = end + 1
        buffer = buffer[start:]
        if len(buffer) > MAX_LINE_BYTES:
            raise StreamBroken(f"stream line longer than {MAX_LINE_BYTES} bytes")
    if buffer:
        yield buffer


async def data_payloads(
    chunks: AsyncIterator[bytes], require_done: bool = True
) -> AsyncIterator[bytes]:
    """The payload of each `data:` line up to `[DONE]` (comments, `event:` and blank lines are
    skipped); raises StreamBroken when the stream breaks, stalls or ends without `[DONE]`
    (APIs whose streams close with an event of their own pass `require_done=False`)."""
    try:
        async for line in iter_lines(chunks):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == DONE:
                return
            yield payload
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise StreamBroken(f"upstream stream broke: {type(exc).__name__}") from None
    except TimeoutError:
        raise StreamBroken("upstream stream stalled past timeout_s") from None
    if require_done:
        raise StreamBroken("upstream stream ended before [DONE]")


def parse_chunk(payload: bytes) -> dict[str, Any]:
    """One event as a chat-completion chunk object, shape-checked where Sparks reads it."""
    try:
        chunk = jsonfast.loads(payload)
    except (ValueError, RecursionError):
        raise StreamBroken(f"non-JSON stream line: {payload[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise StreamBroken(f"stream event is a JSON {type(chunk).__name__}, not an object")
    if "error" in chunk:
        raise StreamBroken(f"upstream reported an error mid-stream: {_error_text(chunk['error'])}")
    choices = chunk.get("choices")
    if choices is not None:
        if not isinstance(choices, list):
            raise StreamBroken("stream event's 'choices' is not an array")
        for choice in choices:
            if not isinstance(choice, dict):
                raise StreamBroken("stream event has a choice that is not an object")
            index = choice.get("index")
            if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
                raise StreamBroken("stream event has a choice 'index' that is not an integer")
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise StreamBroken("stream event has a 'delta' that is not an object")
    usage = chunk.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise StreamBroken("stream event's 'usage' is not an object")
    return chunk


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("code") or error
    return str(error)[:200]
