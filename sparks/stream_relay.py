"""Per-chunk rewriting of an upstream SSE stream (SPEC §4.5). Pure: bytes in, bytes out.

Each upstream `data:` line becomes at most one client event, immediately: nothing is batched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from . import jsonfast
from .protocol import sse_event
from .reasoning import DeltaNormalizer

MAX_LINE_BYTES = 8 * 1024 * 1024


class StreamGarbage(Exception):
    """The upstream sent something that is not an OpenAI SSE event."""


class ChunkRelay:
    """Rewrites `model` to the Sparks id, captures usage, strips the usage chunk when unasked."""

    def __init__(self, served_model: str, include_usage: bool) -> None:
        self.served_model = served_model
        self.include_usage = include_usage
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.chunks = 0
        self.upstream_error: dict[str, Any] | None = None
        self.normalizer = DeltaNormalizer()
        self._last: dict[str, Any] = {}

    def feed_line(self, line: bytes) -> bytes | None:
        """Return the bytes to send for one upstream line, or None when it yields nothing."""
        line = line.rstrip(b"\r")
        if not line.startswith(b"data:"):
            return None  # blank separators, `:` comments, event:/id:/retry: fields
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = jsonfast.loads(payload)
        except ValueError:
            raise StreamGarbage(f"non-JSON stream line: {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise StreamGarbage("stream event is not a JSON object")
        if "error" in chunk:
            self.upstream_error = chunk["error"] if isinstance(chunk["error"], dict) else None
            raise StreamGarbage(f"upstream reported an error mid-stream: {chunk['error']!r:.200}")
        return self.rewrite(chunk)

    def rewrite(self, chunk: dict[str, Any]) -> bytes | None:
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        if "usage" in chunk and not self.include_usage:
            if not chunk.get("choices"):
                return None
            del chunk["usage"]
        if "model" in chunk:
            chunk["model"] = self.served_model
        self.normalizer.normalize_chunk(chunk)
        self._last = chunk
        self.chunks += 1
        return sse_event(chunk)

    def finish(self) -> bytes | None:
        """A last chunk with anything a think-tag splitter still held (e.g. an unclosed tag)."""
        held = self.normalizer.flush()
        if not held:
            return None
        choices = []
        for index, (reasoning, content) in sorted(held.items()):
            delta: dict[str, Any] = {}
            if reasoning:
                delta["reasoning_content"] = reasoning
            if content:
                delta["content"] = content
            choices.append({"index": index, "delta": delta, "finish_reason": None})
        chunk = {
            "id": self._last.get("id"),
            "object": "chat.completion.chunk",
            "created": self._last.get("created"),
            "model": self.served_model,
            "choices": choices,
        }
        return sse_event(chunk)


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
            raise StreamGarbage(f"stream line longer than {MAX_LINE_BYTES} bytes")
    if buffer:
        yield buffer
