"""Anthropic Messages stream events (SPEC §9.2). Pure: chunks in, `event:`/`data:` bytes out.

`MessageStream` turns chat chunks into `message_start`, `content_block_start` /
`content_block_delta` (`thinking_delta`, `text_delta`, `input_json_delta`) /
`content_block_stop`, `message_delta` and `message_stop`. `NativeStream` passes a native
Anthropic backend's own events through with `model` rewritten, counting usage and insisting on
its `message_stop`.
"""

from __future__ import annotations

from typing import Any

from sparks import jsonfast
from sparks.errors import SparksError
from sparks.fronts.messages import error_object, tool_use_id
from sparks.fronts.messages_answer import stop_reason, usage_from_chat, usage_to_chat

UNNAMED_TOOL = "unnamed_tool"


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + jsonfast.dumps(data) + b"\n\n"


def ping_event() -> bytes:
    return sse("ping", {"type": "ping"})


def error_event(error: SparksError) -> bytes:
    return sse("error", error_object(error))


class MessageStream:
    """One streamed answer: feed it chat chunks in order, then `finish()`."""

    def __init__(self, message_id: str, model: str, stops: tuple[str, ...] = ()) -> None:
        self.message_id = message_id
        self.model = model
        self.stops = stops
        self.started = False
        self.block = -1  # index of the last block opened
        self.open: str | None = None  # "thinking" | "text" | "tool_use": the block still open
        self.tool_blocks: dict[int, int] = {}  # chat tool-call index → block index
        self.pending: dict[int, dict[str, Any]] = {}  # tool calls waiting for their name
        self.finish_reason: Any = None
        self.matched: Any = None
        self.usage: Any = None

    def start(self) -> bytes:
        """`message_start`, once (usage is known only at the end: `message_delta` has it)."""
        if self.started:
            return b""
        self.started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_from_chat(None),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = [self.start()]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or ()
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            out.append(self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning}))
        text = delta.get("content")
        if isinstance(text, str) and text:
            out.append(self._delta("text", {"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out.append(self._tool_delta(call))
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if choice.get("stop_reason") is not None:
            self.matched = choice["stop_reason"]
        return b"".join(out)

    def finish(self) -> bytes:
        """Close the last block, then `message_delta` (stop reason, usage) and `message_stop`."""
        out = [self.start()]
        for index in sorted(self.pending):
            call = self.pending[index]
            call["name"] = call["name"] or UNNAMED_TOOL
            out.append(self._open_tool(index, call))
        out.append(self._close())
        reason = stop_reason(self.finish_reason, bool(self.tool_blocks), self.matched, self.stops)
        usage = usage_from_chat(self.usage)
        delta = {
            "stop_reason": reason,
            "stop_sequence": self.matched if reason == "stop_sequence" else None,
        }
        out.append(sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _begin(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.block += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.block, "content_block": block}
        return out + sse("content_block_start", start)

    def _delta(self, kind: str, delta: dict[str, Any], index: int | None = None) -> bytes:
        out = b""
        if index is None:
            if self.open != kind:
                empty = {"type": "thinking", "thinking": "", "signature": ""}
                out = self._begin(
                    kind, empty if kind == "thinking" else {"type": "text", "text": ""}
                )
            index = self.block
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return out + sse("content_block_delta", event)

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        index = call.get("index")
        index = index if isinstance(index, int) else 0
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        if index in self.tool_blocks:  # a later fragment of a call whose block is open
            if not arguments:
                return b""
            delta = {"type": "input_json_delta", "partial_json": arguments}
            return self._delta("tool_use", delta, self.tool_blocks[index])
        pending = self.pending.setdefault(index, {"id": None, "name": None, "arguments": ""})
        pending["id"] = pending["id"] or call.get("id")
        pending["name"] = pending["name"] or function.get("name")
        pending["arguments"] += arguments
        return self._open_tool(index, pending) if pending["name"] else b""

    def _open_tool(self, index: int, call: dict[str, Any]) -> bytes:
        del self.pending[index]
        block = {"type": "tool_use", "id": tool_use_id(call["id"]), "name": call["name"]}
        out = self._begin("tool_use", {**block, "input": {}})
        self.tool_blocks[index] = self.block
        if call["arguments"]:
            delta = {"type": "input_json_delta", "partial_json": call["arguments"]}
            out += self._delta("tool_use", delta, self.block)
        return out


class NativeStream:
    """A native Anthropic backend's stream: each `data:` payload back as its event, `model`
    set to the Sparks id; usage collected in the chat shape."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: dict[str, Any] = {}
        self.stopped = False

    def feed(self, payload: bytes) -> bytes:
        """One upstream payload as one client event; raises ValueError on a non-object and
        SparksError on an upstream `error` event (its Anthropic type kept)."""
        event = jsonfast.loads(payload)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("event without a type")
        kind = event["type"]
        if kind == "message_start" and isinstance(event.get("message"), dict):
            event["message"]["model"] = self.model
            self._note(event["message"].get("usage"))
        elif kind == "message_delta":
            self._note(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            raise SparksError(
                502,
                "upstream_error",
                f"{self.model}: {error.get('message') or 'upstream error event'}",
                extra={"anthropic_type": str(error.get("type") or "api_error")},
            )
        return sse(kind, event)

    def _note(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if isinstance(v, int)})

    def chat_usage(self) -> dict[str, int]:
        return usage_to_chat(self.usage)
