"""Per-chunk rewriting of an upstream chat stream (SPEC §4.5). Pure: payload bytes in, bytes out.

Each upstream event becomes at most one client event, immediately: nothing waits for a later
event (what one upstream read delivered goes out in one write, by the caller).

Every chunk is parsed and re-encoded (orjson: about 1 µs for both). A byte-level rewrite of
`model` in plain chunks was tried and measured slower in Python (9 µs: the checks that make it
safe cost more than the parse it saves); see docs/performance.md.
"""

from __future__ import annotations

from typing import Any

from sparks.backends.reasoning import DeltaNormalizer
from sparks.pipeline.sse import StreamBroken, parse_chunk
from sparks.protocol import sse_event


class ChunkRelay:
    """Rewrites `model` to the Sparks id, captures usage, strips the usage chunk when unasked."""

    def __init__(self, served_model: str, include_usage: bool) -> None:
        self.served_model = served_model
        self.include_usage = include_usage
        self.usage: dict[str, Any] | None = None
        self.chunks = 0
        self.normalizer = DeltaNormalizer()
        self._last: dict[str, Any] = {}

    def feed(self, payload: bytes) -> bytes | None:
        """The client event for one upstream `data:` payload, or None when it yields nothing."""
        chunk = parse_chunk(payload)
        try:
            return self.rewrite(chunk)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            raise StreamBroken(f"unexpected chunk shape ({type(exc).__name__})") from None

    def rewrite(self, chunk: dict[str, Any]) -> bytes | None:
        if "usage" in chunk:
            usage = chunk["usage"]
            if usage:
                self.usage = usage
            if not self.include_usage:
                if not _carries_anything(chunk.get("choices")):
                    return None  # the usage chunk, even with an empty delta (LiteLLM sends one)
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


def _carries_anything(choices: Any) -> bool:
    """Whether a chunk's choices hold anything a client would see: a non-empty delta, a finish
    reason or logprobs."""
    for choice in choices or ():
        if choice.get("delta") or choice.get("finish_reason") or choice.get("logprobs"):
            return True
    return False
