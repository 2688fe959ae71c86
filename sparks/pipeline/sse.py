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
from sparks.backends.watchdog import IdleWatchdog

MAX_LINE_BYTES = 8 * 1024 * 1024
DONE = b"[DONE]"


class StreamBroken(Exception):
    """The upstream stream failed after it began; the message says how, briefly."""


async def payload_batches(
    chunks: AsyncIterator[bytes],
    require_done: bool = True,
    watchdog: IdleWatchdog | None = None,
) -> AsyncIterator[list[bytes]]:
    """The `data:` payloads each upstream read completed, one list per read (so a relay can
    answer everything one read delivered in one write), up to `[DONE]`. Comments, `event:` and
    blank lines are skipped. Raises StreamBroken when the stream breaks, stalls or ends without
    `[DONE]` (APIs whose streams close with an event of their own pass `require_done=False`)."""
    buffer = b""
    try:
        async for data in chunks:
            if watchdog is not None:
                watchdog.touch()
            buffer = buffer + data if buffer else data
            if b"\n" not in data:
                if len(buffer) > MAX_LINE_BYTES:
                    raise StreamBroken(f"stream line longer than {MAX_LINE_BYTES} bytes")
                continue
            *lines, buffer = buffer.split(b"\n")
            batch = []
            for line in lines:
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload == DONE:
                        if batch:
                            yield batch
                        return
                    batch.append(payload)
            if len(buffer) > MAX_LINE_BYTES:
                raise StreamBroken(f"stream line longer than {MAX_LINE_BYTES} bytes")
            if batch:
                yield batch
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        if watchdog is not None and watchdog.fired:
            raise StreamBroken("upstream stream stalled past timeout_s") from None
        raise StreamBroken(f"upstream stream broke: {type(exc).__name__}") from None
    except TimeoutError:
        raise StreamBroken("upstream stream stalled past timeout_s") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if buffer.startswith(b"data:"):  # a last line without its newline
        payload = buffer[5:].strip()
        if payload == DONE:
            return
        yield [payload]
    if watchdog is not None and watchdog.fired:
        raise StreamBroken("upstream stream stalled past timeout_s")
    if require_done:
        raise StreamBroken("upstream stream ended before [DONE]")


async def data_payloads(
    chunks: AsyncIterator[bytes],
    require_done: bool = True,
    watchdog: IdleWatchdog | None = None,
) -> AsyncIterator[bytes]:
    """`payload_batches`, one payload at a time."""
    async for batch in payload_batches(chunks, require_done, watchdog):
        for payload in batch:
            yield payload


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
