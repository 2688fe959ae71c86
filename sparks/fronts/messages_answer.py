"""Chat answers as Anthropic Messages answers (SPEC §9.2). Pure: no I/O.

A whole chat completion becomes a `message` object with `thinking`, `text` and `tool_use`
blocks, in that order; finish reasons become stop reasons and usage is reshaped both ways
(a native Anthropic backend's usage is recorded in the chat shape).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sparks.fronts.messages import tool_use_id

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def stop_reason(finish: Any, tool_calls: bool, matched: Any, stops: tuple[str, ...]) -> str:
    """A chat finish_reason as a stop_reason; `matched` is a backend's `stop_reason` (vLLM)."""
    if isinstance(matched, str) and matched in stops and finish in (None, "stop"):
        return "stop_sequence"
    if tool_calls and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    return STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def usage_from_chat(usage: Any) -> dict[str, int]:
    """Chat usage as Anthropic's: input_tokens exclude the cached prompt tokens."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": min(cached, prompt),
    }


def usage_to_chat(usage: Any) -> dict[str, int]:
    """Anthropic usage in the chat shape the observer records (cache reads count as prompt)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = sum(
        _count(usage.get(k))
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    completion = _count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tool_input(arguments: Any) -> dict[str, Any]:
    """A chat call's JSON arguments as a tool_use `input` object; text that is not a JSON
    object is kept under `_raw_arguments` rather than dropped."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError, RecursionError):
        return {"_raw_arguments": str(arguments)}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def message_from_chat(payload: Any, served_model: str, stops: tuple[str, ...] = ()) -> dict:
    """A whole chat completion as a Messages `message` object."""
    choice: dict[str, Any] = {}
    if isinstance(payload, dict) and isinstance(payload.get("choices"), list):
        first = payload["choices"][0] if payload["choices"] else {}
        choice = first if isinstance(first, dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id")),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    reason = stop_reason(choice.get("finish_reason"), bool(calls), choice.get("stop_reason"), stops)
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": served_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": choice.get("stop_reason") if reason == "stop_sequence" else None,
        "usage": usage_from_chat(payload.get("usage") if isinstance(payload, dict) else None),
    }
