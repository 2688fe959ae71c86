"""Request validation and response/chunk shapes of the OpenAI protocol. No I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from sparks import jsonfast
from sparks.errors import SparksError, invalid_value, missing_field

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
DONE_EVENT = b"data: [DONE]\n\n"


BODY_READ_TIMEOUT_S = 60.0


async def read_body(read: Awaitable[bytes], timeout_s: float | None = None) -> bytes:
    """The request body, bounded in time so a slow upload cannot hold a handler forever."""
    timeout_s = timeout_s or BODY_READ_TIMEOUT_S
    try:
        async with asyncio.timeout(timeout_s):
            return await read
    except TimeoutError:
        raise SparksError(
            408, "request_timeout", f"The request body did not arrive within {timeout_s:g}s"
        ) from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    if not raw.strip():
        raise SparksError(400, "invalid_json", "The request body is empty; expected a JSON object")
    try:
        body = jsonfast.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and jsonfast.TooDeep are ValueErrors too
        raise SparksError(
            400, "invalid_json", f"The request body is not valid JSON: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise SparksError(
            400,
            "invalid_value",
            f"The request body must be a JSON object, not {type(body).__name__}",
        )
    return body


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What Sparks itself needs from a chat request; everything else is forwarded untouched."""

    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    message_count: int


def require_model(body: dict[str, Any]) -> str:
    if "model" not in body:
        raise missing_field("model")
    model = body["model"]
    if not isinstance(model, str) or not model.strip():
        raise invalid_value("model", "'model' must be a non-empty string")
    if not model.isprintable():
        raise invalid_value("model", "'model' must not contain control or invisible characters")
    return model


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """Validate the fields Sparks reads (SPEC §7 error table, §4.6 reasoning fields)."""
    model = require_model(body)
    if "messages" not in body:
        raise missing_field("messages")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise invalid_value("messages", "'messages' must be a non-empty array of message objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_value(f"messages[{index}]", f"messages[{index}] must be an object")
        if not isinstance(message.get("role"), str):
            raise invalid_value(f"messages[{index}].role", f"messages[{index}].role is required")
    stream, include_usage = stream_flags(body)
    validate_reasoning_fields(body)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise invalid_value("n", "'n' must be a positive integer")
    return ChatRequest(body, model, stream, include_usage, len(messages))


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(`stream`, `stream_options.include_usage`), validated; null means absent."""
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_value("stream", "'stream' must be true or false")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise invalid_value("stream_options", "'stream_options' must be an object")
    flag = options.get("include_usage")
    if flag is None:
        flag = False
    if not isinstance(flag, bool):
        raise invalid_value(
            "stream_options.include_usage", "'stream_options.include_usage' must be true or false"
        )
    return stream, flag


def validate_reasoning_fields(body: dict[str, Any]) -> None:
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise invalid_value(
            "reasoning_effort",
            f"'reasoning_effort' must be one of {', '.join(REASONING_EFFORTS)}; got {effort!r}",
        )
    thinking = body.get("enable_thinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise invalid_value("enable_thinking", "'enable_thinking' must be true or false")


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + jsonfast.dumps(payload) + b"\n\n"


def chat_chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(cid: str, model: str, usage: dict[str, int], created: int | None = None) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage,
    }


def chat_completion(
    cid: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    usage: dict[str, int],
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }
