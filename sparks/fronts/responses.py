"""OpenAI Responses API requests → chat completion requests (SPEC §9.1). Pure: no I/O.

`instructions` and `input` items (`message` with `input_text`/`input_image` parts,
`function_call`, `function_call_output`, `reasoning`) become chat messages; function tools and
the sampling fields become chat fields; hosted tools Sparks cannot run are left out and named,
so the caller can note them. Answers go the other way in `responses_output` (whole) and
`responses_stream` (events).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparks.errors import invalid_value, missing_field
from sparks.protocol import require_model, stream_flags

EFFORTS = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium"}
EFFORTS |= {"high": "high", "xhigh": "high"}  # chat has no xhigh: the nearest is high
TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
MESSAGE_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}
MESSAGE_ROLES["developer"] = "system"  # most chat backends know no developer role
# Responses-only request fields: consumed here, never forwarded to a chat backend. Any other
# unknown field is forwarded unchanged (SPEC §4.5), like chat's own.
CONSUMED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "reasoning", "text", "stream", "store",
        "previous_response_id", "metadata", "include", "truncation", "background",
        "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "service_tier",
        "max_tool_calls", "top_logprobs", "conversation", "prompt", "stream_options",
        "client_metadata", "context_management", "user",
    }
)  # fmt: skip


Lookup = Callable[[str], list[dict[str, Any]]]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class ResponsesRequest:
    """A validated Responses request and the chat body it becomes."""

    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    input_items: list[dict[str, Any]]  # this request's own items (strings made into a message)
    history: list[dict[str, Any]]  # the items before them, from previous_response_id
    chat_body: dict[str, Any]
    dropped_tools: list[str]  # hosted tool types not offered to the model
    echo: dict[str, Any]  # request fields the response object repeats
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))


def parse_responses_request(body: dict[str, Any], lookup: Lookup | None = None) -> ResponsesRequest:
    """Validate `body` and build its chat request; `lookup` returns the items before the
    response named by `previous_response_id` (its history, inputs and outputs)."""
    model = require_model(body)
    if "input" not in body or body["input"] is None:
        raise missing_field("input")
    items = input_items(body["input"])
    stream, _ = stream_flags({"stream": body.get("stream")})
    store = body.get("store", True)
    if store is None:
        store = True
    if not isinstance(store, bool):
        raise invalid_value("store", "'store' must be true or false")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise invalid_value("previous_response_id", "'previous_response_id' must be a string")
    history = lookup(previous) if previous and lookup is not None else []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_value("instructions", "'instructions' must be a string")
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    messages += chat_messages([*history, *items])
    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in CONSUMED}
    chat.update(model=model, messages=messages, stream=stream)
    tools, dropped = chat_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    choice = chat_tool_choice(body.get("tool_choice"))
    if tools and choice is not None:
        chat["tool_choice"] = choice
    for name in ("parallel_tool_calls", "temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        limit = body["max_output_tokens"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise invalid_value("max_output_tokens", "'max_output_tokens' must be an integer ≥ 1")
        chat["max_tokens"] = limit
    effort = reasoning_effort(body.get("reasoning"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    response_format = chat_response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    echo = {
        name: body.get(name)
        for name in ("instructions", "max_output_tokens", "temperature", "top_p", "user")
    }
    echo.update(
        tools=[t for t in body.get("tools") or [] if t.get("type") == "function"],
        tool_choice=body.get("tool_choice") or "auto",
        parallel_tool_calls=body.get("parallel_tool_calls", True),
        reasoning=body.get("reasoning") or {"effort": None, "summary": None},
        text=body.get("text") or {"format": {"type": "text"}},
        metadata=body.get("metadata") or {},
        previous_response_id=previous,
        store=store,
    )
    return ResponsesRequest(model, stream, store, previous, items, history, chat, dropped, echo)


# --- input items → chat messages ---------------------------------------------------------


def input_items(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of typed items (a string is one user message); shapes checked."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid_value("input", "'input' must be a string or a non-empty array of items")
    items = []
    for index, item in enumerate(value):
        path = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid_value(path, f"{path} must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in ITEM_TYPES:
            raise invalid_value(
                f"{path}.type",
                f"{path}.type must be one of {', '.join(ITEM_TYPES)}; got {kind!r}",
            )
        item = {**item, "type": kind}
        check_item(item, path)
        items.append(item)
    return items


def check_item(item: dict[str, Any], path: str) -> None:
    kind = item["type"]
    if kind == "message":
        if item.get("role") not in MESSAGE_ROLES:
            raise invalid_value(
                f"{path}.role", f"{path}.role must be one of {', '.join(MESSAGE_ROLES)}"
            )
        message_content(item.get("content"), f"{path}.content")
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise invalid_value(f"{path}.{name}", f"{path}.{name} must be a string")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise invalid_value(f"{path}.call_id", f"{path}.call_id must be a string")
        output = item.get("output")
        if not isinstance(output, str):
            message_content(output, f"{path}.output")
    else:
        reasoning_text(item, path)


def message_content(content: Any, path: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: text only → one string, else chat parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_value(path, f"{path} must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        where = f"{path}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS or kind == "refusal":
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise invalid_value(f"{where}.text", f"{where}.text must be a string")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise invalid_value(
                    f"{where}.image_url",
                    f"{where}.image_url must be a URL or data: URL (file_id is not supported)",
                )
            image = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise invalid_value(
                f"{where}.type",
                f"{where}.type must be input_text, input_image, output_text or refusal; "
                f"got {kind!r}",
            )
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def reasoning_text(item: dict[str, Any], path: str) -> str:
    """A reasoning item's text: its full `content` if present, else its summary."""
    for name in ("content", "summary"):
        parts = item.get(name)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise invalid_value(f"{path}.{name}", f"{path}.{name} must be an array")
        texts = []
        for index, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("summary_text", "reasoning_text") or not isinstance(
                part.get("text"), str
            ):
                raise invalid_value(
                    f"{path}.{name}[{index}].type",
                    f"{path}.{name}[{index}] must be a summary_text or reasoning_text part",
                )
            texts.append(part["text"])
        if texts:
            return "\n".join(texts)
    return ""


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items in order as chat messages: a function call joins the assistant message just before
    it (or starts one); reasoning rides on the next assistant message as `reasoning_content`."""
    messages: list[dict[str, Any]] = []
    reasoning: list[str] = []

    def new_assistant(content: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = "\n".join(reasoning)
            reasoning.clear()
        messages.append(message)
        return message

    for item in items:
        kind = item["type"]
        if kind == "reasoning":
            if text := reasoning_text(item, "input"):
                reasoning.append(text)
        elif kind == "function_call":
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant" or reasoning:
                last = new_assistant(None)
            call = {"name": item["name"], "arguments": item["arguments"]}
            last.setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function", "function": call}
            )
        elif kind == "function_call_output":
            output = item["output"]
            content = output if isinstance(output, str) else message_content(output, "output")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
        elif kind != "message":
            continue  # stored native output (e.g. a hosted tool's call) has no chat form
        elif item["role"] == "assistant":
            new_assistant(message_content(item.get("content"), "content"))
        else:
            role = MESSAGE_ROLES[item["role"]]
            messages.append({"role": role, "content": message_content(item.get("content"), "")})
    return messages


# --- tools and options ---------------------------------------------------------------------


def chat_tools(tools: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Function tools as chat tools; every other (hosted) tool type is dropped and named."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise invalid_value("tools", "'tools' must be an array")
    offered, dropped = [], []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid_value(f"{path}.type", f"{path} must be an object with a 'type'")
        if tool["type"] != "function":
            dropped.append(tool["type"])
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid_value(f"{path}.name", f"{path}.name must be a non-empty string")
        function = {"name": tool["name"]}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        offered.append({"type": "function", "function": function})
    return offered, dropped


def chat_tool_choice(choice: Any) -> Any:
    """`auto`/`none`/`required` as they are; a named function in chat's nesting; a hosted
    tool's choice (not offered) → None, so the model chooses among what it has."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required"):
            return choice["mode"]
        return None
    raise invalid_value("tool_choice", "'tool_choice' must be auto, none, required or an object")


def reasoning_effort(reasoning: Any) -> str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise invalid_value("reasoning", "'reasoning' must be an object")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise invalid_value(
            "reasoning.effort",
            f"'reasoning.effort' must be one of {', '.join(EFFORTS)}; got {effort!r}",
        )
    return EFFORTS[effort]


def chat_response_format(text: Any) -> dict[str, Any] | None:
    """`text.format`: json_schema → chat's json_schema response_format; json_object as is."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise invalid_value("text", "'text' must be an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise invalid_value("text.format.schema", "'text.format.schema' must be an object")
        schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        for name in ("strict", "description"):
            if fmt.get(name) is not None:
                schema[name] = fmt[name]
        return {"type": "json_schema", "json_schema": schema}
    raise invalid_value(
        "text.format.type", "'text.format.type' must be text, json_object or json_schema"
    )
