"""Chat answers as Responses API output (SPEC §9.1): output items, usage, the response object.

A chat message becomes a `reasoning` item (from `reasoning_content`, as its summary), a
`message` item with one `output_text` part, and one `function_call` item per tool call, in that
order; `finish_reason: "length"` makes the response `incomplete`. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from sparks.errors import SparksError
from sparks.fronts.responses import ResponsesRequest, new_id


def responses_usage(usage: Any) -> dict[str, Any] | None:
    """Chat token counts in the Responses shape, details included."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Responses token counts in the chat shape (what the observer records)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    total = usage.get("total_tokens") or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id or new_id("rs"), "type": "reasoning", "summary": summary}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict:
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text_part(text)] if status == "completed" else [],
    }


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    call_id: str, name: str, arguments: str, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id or new_id("fc"),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def output_items(message: Any) -> list[dict[str, Any]]:
    """A chat message (reasoning_content, content, tool_calls) as Responses output items."""
    if not isinstance(message, dict):
        return []
    items = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        items.append(reasoning_item(message["reasoning_content"]))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        items.append(message_item(content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        items.append(
            function_call_item(
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
            )
        )
    return items


def response_object(
    request: ResponsesRequest,
    model: str,
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": request.id,
        "object": "response",
        "created_at": request.created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "usage": usage,
        "truncation": "disabled",
        **request.echo,
    }


def response_from_chat(request: ResponsesRequest, payload: Any, model: str) -> dict[str, Any]:
    """A whole chat completion as a response object (finish_reason length → incomplete)."""
    if not isinstance(payload, dict):
        raise SparksError(502, "upstream_error", f"{model}: the answer is not a JSON object")
    choices = payload.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    output = output_items(choice.get("message"))
    return response_object(
        request, model, output, status=status, usage=responses_usage(payload.get("usage"))
    )


def output_text(response: dict[str, Any]) -> str:
    """The SDKs' `output_text` convenience: every output_text part, joined."""
    return "".join(
        part.get("text", "")
        for item in response.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )
