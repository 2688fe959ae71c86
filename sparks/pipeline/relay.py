"""Per-chunk rewriting of an upstream chat stream (SPEC §4.5). Pure: payload bytes in, bytes out.

Each upstream event becomes at most one client event, immediately: nothing waits for a later
event (what one upstream read delivered goes out in one write, by the caller).

Most chunks of a long answer are plain content deltas that need only `model` rewritten (and
`"usage":null` dropped when the client did not ask for usage). Those are rewritten in their
bytes once the think-tag splitter has settled; anything else (reasoning, tool calls, usage,
errors, several choices, non-compact or escaped JSON, a first chunk) is parsed. The fast path's
output is byte-identical to the parsed path's (tests/test_relay_fast_path.py).
"""

from __future__ import annotations

from typing import Any

from sparks import jsonfast
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
        self._model_json = jsonfast.dumps(served_model)

    def feed(self, payload: bytes) -> bytes | None:
        """The client event for one upstream `data:` payload, or None when it yields nothing."""
        fast = self._rewrite_bytes(payload)
        if fast is not None:
            self.chunks += 1
            return fast
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

    def _rewrite_bytes(self, payload: bytes) -> bytes | None:
        """A plain chunk rewritten in its bytes, or None when it must be parsed."""
        if (
            not payload.startswith(b'{"')
            or not payload.endswith(b"}")
            or any(marker in payload for marker in _PARSE_MARKERS)
            or payload.count(b'"model":') != 1
            or payload.count(b'"index":') != 1
            or payload.count(b"{") != payload.count(b"}")
            or payload.count(b"[") != payload.count(b"]")
        ):
            return None
        if b'"content":"' in payload and b'"content":""' not in payload:
            if not self.normalizer.settled(_only_index(payload)):
                return None  # the think-tag splitter may still change this content
        start = payload.index(b'"model":') + 8
        if b"{" in payload[1:start] or payload[start : start + 1] != b'"':
            return None  # not the top-level `model`, or not a string
        end = payload.find(b'"', start + 1)
        if end < 0 or b"\\" in payload[start:end]:
            return None
        out = payload[:start] + self._model_json + payload[end + 1 :]
        if b'"usage":' in out:
            if b'"usage":null' not in out or out.count(b'"usage":') != 1:
                return None
            if not self.include_usage:
                if b'"delta":{}' in out and b'"finish_reason":null' in out:
                    return None  # nothing else in it: the parsed path decides whether to drop
                if b',"usage":null' in out:
                    out = out.replace(b',"usage":null', b"", 1)
                elif b'"usage":null,' in out:
                    out = out.replace(b'"usage":null,', b"", 1)
                else:
                    return None
        return b"data: " + out + b"\n\n"

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


# Anything that the parsed path would change, or whose bytes orjson might write differently.
_PARSE_MARKERS = (
    b'"reasoning',
    b'"tool_calls"',
    b'"function_call"',
    b'"error"',
    b'"usage":{',
    b'"logprobs":{',
    b'"logprobs":[',
    b"\\u",
    b"\\/",
    b'": ',
    b', "',
    b"{ ",
    b"[ ",
)


def _only_index(payload: bytes) -> int | None:
    """The choice index of a one-choice chunk, read from its bytes (None: not a plain int)."""
    start = payload.index(b'"index":') + 8
    end = start
    while end < len(payload) and 48 <= payload[end] <= 57:
        end += 1
    return int(payload[start:end]) if end > start else None


def _carries_anything(choices: Any) -> bool:
    """Whether a chunk's choices hold anything a client would see: a non-empty delta, a finish
    reason or logprobs."""
    for choice in choices or ():
        if choice.get("delta") or choice.get("finish_reason") or choice.get("logprobs"):
            return True
    return False
