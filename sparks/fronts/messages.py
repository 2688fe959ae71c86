"""Anthropic Messages requests as chat requests (SPEC §9.2). Pure: no I/O.

Requests: `system`, `messages` (`text`, `image`, `tool_use`, `tool_result`, `thinking` blocks),
custom `tools`, `tool_choice` and the sampling fields become a chat request; server tools Sparks
cannot run are left out and named so the caller can note them. Answers are in
`messages_answer.py`, streams in `messages_stream.py`; errors and count_tokens' estimate here.
Tool-call ids map both ways without state (`tool_use_id` ↔ `tool_call_id`), so a `tool_result`
always finds its call.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sparks.errors import SparksError, invalid_value, missing_field

# Anthropic-only request fields: consumed here, never forwarded to a chat backend. Any other
# unknown field is forwarded unchanged (SPEC §4.5), like chat's own.
CONSUMED = frozenset(
    {
        "model", "system", "messages", "tools", "tool_choice", "max_tokens", "stop_sequences",
        "top_k", "thinking", "metadata", "stream", "container", "context_management",
        "mcp_servers", "service_tier", "betas", "output_config", "anthropic_version",
    }
)  # fmt: skip
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))  # budget_tokens below → effort; else high
OUTPUT_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
IMAGE_TOKENS = 1600  # count_tokens' estimate for one image (Anthropic's cap per image)
CHARS_PER_TOKEN = 4
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_WRAPPED = "toolu_sx_"  # a chat id that is not a valid tool_use id, base64url-encoded


@dataclass
class Translated:
    """A Messages request as the pipeline serves it."""

    chat: dict[str, Any]
    stream: bool
    stop_sequences: tuple[str, ...] = ()
    dropped_tools: list[str] = field(default_factory=list)


# --- tool-call ids -------------------------------------------------------------------------


def tool_use_id(chat_id: str | None) -> str:
    """A chat tool-call id as a `tool_use` id (`^[A-Za-z0-9_-]+$`), reversibly."""
    if not chat_id:
        return "toolu_" + secrets.token_hex(12)
    if _SAFE_ID.fullmatch(chat_id) and not chat_id.startswith(_WRAPPED):
        return chat_id
    encoded = base64.urlsafe_b64encode(chat_id.encode()).decode().rstrip("=")
    return _WRAPPED + encoded


def chat_tool_id(use_id: str) -> str:
    """The chat tool-call id a `tool_use` id came from (the inverse of `tool_use_id`)."""
    if not use_id.startswith(_WRAPPED):
        return use_id
    encoded = use_id[len(_WRAPPED) :]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return use_id


# --- requests ------------------------------------------------------------------------------


def to_chat(body: dict[str, Any]) -> Translated:
    """A Messages request body (already a JSON object) as a chat request; 400s name the field."""
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    raw_messages = body.get("messages")
    if raw_messages is None:
        raise missing_field("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid_value("messages", "'messages' must be a non-empty array of messages")
    for index, message in enumerate(raw_messages):
        messages.extend(_chat_messages(message, f"messages[{index}]"))
    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in CONSUMED}
    chat["model"] = body.get("model")
    chat["messages"] = messages
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_value("stream", "'stream' must be true or false")
    if stream:
        chat["stream"] = True
    out = Translated(chat, bool(stream))
    _sampling(body, chat, out)
    _tools(body, chat, out)
    _reasoning(body, chat)
    return out


def _system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        return "\n\n".join(_text_of(block, f"system[{i}]") for i, block in enumerate(system))
    raise invalid_value("system", "'system' must be a string or an array of text blocks")


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise invalid_value(where, f"{where} must be a text block")
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid_value(f"{where}.text", f"{where}.text must be a string")
    return text


def _blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid_value(f"{where}.content", f"{where}.content must be a string or blocks")
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid_value(f"{where}.content[{i}]", f"{where}.content[{i}] needs a 'type'")
    return content


def _chat_messages(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        raise invalid_value(where, f"{where} must be an object")
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise invalid_value(f"{where}.role", f"{where}.role must be 'user' or 'assistant'")
    blocks = _blocks(message, where)
    if role == "system":  # a mid-conversation system message (Claude Code sends them)
        texts = [_text_of(block, f"{where}.content[{i}]") for i, block in enumerate(blocks)]
        return [{"role": "system", "content": "\n\n".join(texts)}]
    if role == "assistant":
        return [_assistant_message(blocks, where)]
    return _user_messages(blocks, where)


def _assistant_message(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at, kind = f"{where}.content[{i}]", block["type"]
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "thinking":
            if isinstance(block.get("thinking"), str):
                thinking.append(block["thinking"])
        elif kind == "redacted_thinking":
            continue  # encrypted for Anthropic's own models: nothing another model can read
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        else:
            raise invalid_value(f"{at}.type", f"{at}: unsupported block type {kind!r}")
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if thinking:
        message["reasoning_content"] = "\n\n".join(thinking)
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    use_id, name = block.get("id"), block.get("name")
    if not isinstance(use_id, str) or not use_id:
        raise invalid_value(f"{where}.id", f"{where}.id must be a non-empty string")
    if not isinstance(name, str) or not name:
        raise invalid_value(f"{where}.name", f"{where}.name must be a non-empty string")
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    return {
        "id": chat_tool_id(use_id),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _user_messages(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Tool results first (chat wants them right after the assistant's calls), then the rest."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at, kind = f"{where}.content[{i}]", block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            message, images = _tool_message(block, at)
            results.append(message)
            parts.extend(images)
        elif kind == "document" and isinstance(block.get("source"), dict):
            source = block["source"]
            if source.get("type") != "text" or not isinstance(source.get("data"), str):
                raise invalid_value(f"{at}.source", f"{at}: only text documents are supported")
            parts.append({"type": "text", "text": source["data"]})
        else:
            raise invalid_value(f"{at}.type", f"{at}: unsupported block type {kind!r}")
    if not parts:
        return results
    if all(p["type"] == "text" for p in parts):
        content: Any = "\n\n".join(p["text"] for p in parts)
    else:
        content = parts
    return [*results, {"role": "user", "content": content}]


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url":
        if isinstance(source.get("url"), str):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise invalid_value(
        f"{where}.source", f"{where}.source must be base64 (media_type, data) or a url"
    )


def _tool_message(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict]]:
    """A `tool_result` as a chat `tool` message; its images follow in the user message."""
    use_id = block.get("tool_use_id")
    if not isinstance(use_id, str) or not use_id:
        raise invalid_value(f"{where}.tool_use_id", f"{where}.tool_use_id is required")
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            at = f"{where}.content[{i}]"
            if isinstance(part, dict) and part.get("type") == "image":
                images.append(_image_part(part, at))
            else:
                texts.append(_text_of(part, at))
        text = "\n\n".join(texts)
    else:
        raise invalid_value(f"{where}.content", f"{where}.content must be a string or blocks")
    if block.get("is_error") is True:
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": chat_tool_id(use_id), "content": text}, images


def _sampling(body: dict[str, Any], chat: dict[str, Any], out: Translated) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise invalid_value("max_tokens", "'max_tokens' must be a positive integer")
        chat["max_tokens"] = max_tokens
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid_value("stop_sequences", "'stop_sequences' must be an array of strings")
        if stops:
            chat["stop"] = stops
            out.stop_sequences = tuple(stops)


def _tools(body: dict[str, Any], chat: dict[str, Any], out: Translated) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid_value("tools", "'tools' must be an array")
    offered = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid_value(f"tools[{i}]", f"tools[{i}] must be an object with a 'name'")
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            out.dropped_tools.append(str(tool.get("type") or tool["name"]))
            continue  # a server tool (web search, code execution, …): Sparks cannot run it
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        offered.append({"type": "function", "function": function})
    if offered:
        chat["tools"] = offered
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in TOOL_CHOICES:
        chat["tool_choice"] = TOOL_CHOICES[kind]
    else:
        raise invalid_value(
            "tool_choice", "'tool_choice.type' must be auto, any, tool (with name) or none"
        )
    if choice.get("disable_parallel_tool_use") is True and offered:
        chat["parallel_tool_calls"] = False
    if not offered:
        chat.pop("tool_choice", None)  # no tools left to choose among


def _reasoning(body: dict[str, Any], chat: dict[str, Any]) -> None:
    """`thinking` (and `output_config.effort`) → the chat reasoning fields (SPEC §4.6)."""
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("effort") in OUTPUT_EFFORTS:
        chat["reasoning_effort"] = OUTPUT_EFFORTS[config["effort"]]
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        chat["enable_thinking"] = False
    elif kind == "adaptive":
        chat["enable_thinking"] = True
    elif kind == "enabled":
        chat["enable_thinking"] = True
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            effort = next((e for limit, e in EFFORT_BUDGETS if budget < limit), "high")
            chat.setdefault("reasoning_effort", effort)
    else:
        raise invalid_value("thinking", "'thinking.type' must be enabled, adaptive or disabled")


# --- errors and counting -------------------------------------------------------------------


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_object(error: SparksError) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`; an upstream Anthropic error keeps its
    own type (carried in `error.extra["anthropic_type"]`)."""
    kind = (error.extra or {}).get("anthropic_type") or error_type(error.status)
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def estimate_tokens(chat: dict[str, Any]) -> int:
    """count_tokens' estimate: characters / 4 over the translated messages and tools (JSON),
    each image counted as IMAGE_TOKENS instead of its bytes."""
    images = 0
    messages = []
    for message in chat.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            images += sum(1 for p in content if p.get("type") == "image_url")
            content = [p for p in content if p.get("type") != "image_url"]
            message = {**message, "content": content}
        messages.append(message)
    text = json.dumps(messages, ensure_ascii=False)
    if chat.get("tools"):
        text += json.dumps(chat["tools"], ensure_ascii=False)
    return max(1, -(-len(text) // CHARS_PER_TOKEN) + images * IMAGE_TOKENS)
