"""A fake OpenAI-compatible upstream: Sparks' test double, demo backend and benchmark target.

Run ``python scripts/fake_upstream.py --port 9100`` and point a Sparks backend at
``http://127.0.0.1:9100/v1``; tests load this file by path and call ``create_app``. Failure
modes are chosen per request by an optional ``"fake"`` object in the JSON body (the gateway
forwards unknown fields unchanged), by model names (``fail-500``, ``slow-250``, ``hang``) or by
turns queued with ``POST /_fake/script``. Only the standard library and aiohttp are imported,
so the file works without Sparks installed.
"""

import argparse
import asyncio
import base64
import functools
import hashlib
import itertools
import json
import re
import signal
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

DEFAULT_MODELS = ("fake-model", "fake-small")
MAX_BODY_BYTES = 64 * 1024 * 1024
HUGE_BYTES = 32 * 1024 * 1024
HANG_SECONDS = 300.0
POLL_SECONDS = 0.05
MAX_RECORDED = 10_000
MODEL_CREATED = 1_700_000_000
ARGUMENT_FRAGMENT = 7
SPEECH_AUDIO = bytes(range(256)) * 256
SPEECH_WRITE = 8 * 1024
# A 1x1 transparent PNG: the smallest image a client can really decode.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
HTML_PAGE = "<html><head><title>Sign in</title></head><body><h1>Wi-Fi login</h1></body></html>\n"
GARBAGE_EVENTS = (b"data: this is not json\n\n", b'data: {"choices": [\n\n')
DONE_EVENT = b"data: [DONE]\n\n"
# How chunks look: "plain" (the fields every server sends; the default), or the extra fields a
# real server adds to every chunk, for benchmarks that must pay what a real stream costs.
CHUNK_SHAPES = ("plain", "openai", "vllm")
SYSTEM_FINGERPRINT = "fp_f0e1d2c3b4"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class FakeSettings:
    """What ``create_app`` was asked for; the models body is prebuilt because benchmarks poll it."""

    models: tuple[str, ...]
    owner: str
    require_key: str | None
    models_body: bytes
    chunk_shape: str = "plain"


@dataclass
class RecordedRequest:
    """One /v1 request as received, so tests can assert exactly what the gateway forwarded.

    Header names are lower-cased; ``form_values`` holds the non-file multipart fields.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form_fields: list[str] = field(default_factory=list)
    form_values: dict[str, str] = field(default_factory=dict)


SETTINGS = web.AppKey("fake_settings", FakeSettings)
RECORDED = web.AppKey("fake_recorded", list[RecordedRequest])
SCRIPTS = web.AppKey("fake_scripts", dict[str, deque[dict[str, Any]]])
CALL_IDS = web.AppKey("fake_call_ids", itertools.count)

Endpoint = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]
# (head, body, tail): fail_after_chunks counts and cuts only the body events.
StreamEvents = tuple[list[bytes], list[bytes], list[bytes]]


class FakeError(Exception):
    """An OpenAI-shaped error answer; raised anywhere in a handler, shaped by ``v1_endpoint``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        default = "server_error" if status >= 500 else "invalid_request_error"
        self.type = type_ or ERROR_TYPES.get(status, default)
        self.headers = headers

    def response(self) -> web.Response:
        error = {"message": self.message, "type": self.type, "param": self.param}
        error["code"] = self.code
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


class ClientGone(Exception):
    """The client hung up while we were waiting; there is nobody left to answer."""


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------- request reading


def record_request(request: web.Request) -> RecordedRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    record = RecordedRequest(request.method, request.path, headers)
    recorded = request.app[RECORDED]
    recorded.append(record)
    if len(recorded) > MAX_RECORDED:
        del recorded[: len(recorded) - MAX_RECORDED]
    return record


async def read_json(request: web.Request, record: RecordedRequest) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise FakeError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise FakeError(400, "request body must be a JSON object", code="invalid_json")
    record.json = body
    return body


def model_control(model: str) -> dict[str, Any] | None:
    """Control implied by the model name, for tests that cannot set a body field."""
    if model == "hang":
        return {"hang": True}
    if match := re.fullmatch(r"fail-(\d{3})", model):
        return {"status": int(match[1])}
    if match := re.fullmatch(r"slow-(\d+(?:\.\d+)?)", model):
        return {"delay_ms": float(match[1])}
    return None


def resolve(
    request: web.Request, body: dict[str, Any], *, scripted: bool = False
) -> tuple[str, dict[str, Any]]:
    """Return ``(model, control)``: name control, then the body's ``fake``, then a script turn."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FakeError(400, "missing required field 'model' (a string)", param="model")
    control = model_control(model)
    if control is None and model not in request.app[SETTINGS].models:
        raise FakeError(
            404,
            f"The model '{model}' does not exist",
            param="model",
            code="model_not_found",
            type_="invalid_request_error",
        )
    control = dict(control or {})
    fake = body.get("fake")
    if fake is not None:
        if not isinstance(fake, dict):
            raise FakeError(400, "'fake' must be an object", param="fake")
        control.update(fake)
    if scripted and (turn := pop_turn(request.app, model)) is not None:
        control.update(turn)
    return model, control


def number(control: dict[str, Any], key: str) -> float | None:
    value = control.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FakeError(400, f"fake.{key} must be a non-negative number", param=f"fake.{key}")
    return value


# ---------------------------------------------------------------- timing and failure


async def wait_connected(request: web.Request, seconds: float) -> bool:
    """Sleep in short slices and report whether the client is still there.

    aiohttp does not cancel handlers on disconnect by default, so a hang must notice it itself.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if request.transport is None or request.transport.is_closing():
            return False
        await asyncio.sleep(min(left, POLL_SECONDS))
    return request.transport is not None and not request.transport.is_closing()


async def apply_preamble(request: web.Request, control: dict[str, Any]) -> None:
    """Hang, delay and error controls, all before any header is sent."""
    if control.get("hang"):
        if not await wait_connected(request, HANG_SECONDS):
            raise ClientGone
        raise FakeError(504, "fake upstream hung and gave up", code="hang")
    delay_ms = number(control, "delay_ms")
    if delay_ms and not await wait_connected(request, delay_ms / 1000):
        raise ClientGone
    status = control.get("status")
    if status is None:
        return
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise FakeError(400, "fake.status must be an HTTP status code", param="fake.status")
    if status >= 400:
        headers = {"Retry-After": "7"} if status == 429 else None
        code = "rate_limit_exceeded" if status == 429 else None
        raise FakeError(status, f"fake upstream error {status}", code=code, headers=headers)


def json_answer(payload: dict[str, Any], control: dict[str, Any]) -> web.Response:
    """A JSON 200, or the broken bodies real upstreams sometimes send instead."""
    kind = control.get("body")
    if kind == "html":
        status = control.get("html_status", 200)
        return web.Response(text=HTML_PAGE, content_type="text/html", status=status)
    text = dumps(payload)
    if kind == "truncated":
        text = text[: max(1, len(text) // 2)]
    return web.Response(text=text, content_type="application/json")


def abort_connection(request: web.Request) -> None:
    """Close mid-body: the chunked body never terminates, so the client sees a broken stream."""
    if request.transport is not None:
        request.transport.close()


async def write_stream(
    request: web.Request,
    events: StreamEvents,
    control: dict[str, Any],
) -> web.StreamResponse:
    """Write SSE events one ``write`` each; ``fail_after_chunks`` cuts the middle part short."""
    head, body, tail = events
    fail_after = number(control, "fail_after_chunks")
    delay = (number(control, "chunk_delay_ms") or 0) / 1000
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    resp.headers["Cache-Control"] = "no-cache"
    await resp.prepare(request)
    try:
        for index, event in enumerate(itertools.chain(head, body, tail)):
            if fail_after is not None and index >= len(head) + min(fail_after, len(body)):
                abort_connection(request)
                return resp
            if index and delay and not await wait_connected(request, delay):
                return resp
            await resp.write(event)
    except ConnectionResetError:
        pass  # the client left; aiohttp ends the response quietly
    return resp


# ---------------------------------------------------------------- text helpers


def split_words(text: str) -> list[str]:
    """Word pieces that keep their leading whitespace, so ``"".join`` gives the text back."""
    return re.findall(r"\s*\S+|\s+$", text)


def exact_pieces(text: str, count: int) -> list[str]:
    """Exactly ``count`` pieces: merge words evenly, or pad by repeating words."""
    pieces = split_words(text) or ["fake"]
    words = text.split() or ["fake"]
    for index in range(count - len(pieces)):
        pieces.append(" " + words[index % len(words)])
    size, extra = divmod(len(pieces), count)
    merged: list[str] = []
    start = 0
    for index in range(count):
        end = start + size + (index < extra)
        merged.append("".join(pieces[start:end]))
        start = end
    return merged


def message_text(message: Any) -> str:
    """Text of a message whose content is a string or a list of parts (text parts joined)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def last_text(messages: list[Any], role: str) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            return message_text(message)
    return ""


def word_count(*texts: str | None) -> int:
    return max(1, sum(len(text.split()) for text in texts if text))


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class ChunkEncoder:
    """Builds stream events around a precomputed prefix so only the choice is JSON-encoded.

    ``shape="openai"`` adds ``service_tier``, ``system_fingerprint`` and ``"logprobs":null`` to
    every chunk, and ``"usage":null`` when the client asked for usage; ``"vllm"`` adds
    ``"logprobs":null`` and, on the finish chunk, ``"stop_reason":null`` (key order as theirs).
    """

    def __init__(
        self,
        kind: str,
        completion_id: str,
        created: int,
        model: str,
        shape: str = "plain",
        include_usage: bool = False,
    ) -> None:
        self.base = {"id": completion_id, "object": kind, "created": created, "model": model}
        if shape == "openai":
            self.base.update(service_tier="default", system_fingerprint=SYSTEM_FINGERPRINT)
        self.shape = shape
        self.prefix = ("data: " + dumps(self.base)[:-1] + ',"choices":[{"index":0,').encode()
        null_usage = shape == "openai" and include_usage
        self.suffix = b'],"usage":null}\n\n' if null_usage else b"]}\n\n"

    def choice(self, fields: dict[str, Any]) -> bytes:
        if self.shape != "plain" and "logprobs" not in fields:
            finish = fields.get("finish_reason")
            rest = {k: v for k, v in fields.items() if k != "finish_reason"}
            fields = {**rest, "logprobs": None, "finish_reason": finish}
            if self.shape == "vllm" and finish is not None:
                fields["stop_reason"] = None
        return self.prefix + dumps(fields)[1:].encode() + self.suffix

    def usage(self, counts: dict[str, int]) -> bytes:
        return ("data: " + dumps({**self.base, "choices": [], "usage": counts}) + "\n\n").encode()


# ---------------------------------------------------------------- chat completions


@dataclass
class ChatPlan:
    """Everything a chat answer holds, shared by the JSON and the streaming shapes."""

    content: str | None
    pieces: list[str]
    reasoning: str | None
    reasoning_field: str | None
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def usage(self) -> dict[str, int]:
        arguments = [call["function"]["arguments"] for call in self.tool_calls]
        reasoning = self.reasoning if self.reasoning_field else None
        return usage(self.prompt_tokens, word_count(self.content, reasoning, *arguments))


def build_tool_calls(app: web.Application, specs: Any) -> list[dict[str, Any]]:
    if specs is None:
        return []
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise FakeError(400, "fake.tool_calls must be a list of objects", param="fake.tool_calls")
    calls = []
    for spec in specs:
        arguments = spec.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        call_id = spec.get("id") or f"call_{next(app[CALL_IDS])}"
        function = {"name": str(spec.get("name", "tool")), "arguments": arguments}
        calls.append({"id": call_id, "type": "function", "function": function})
    return calls


def plan_chat(app: web.Application, body: dict[str, Any], control: dict[str, Any]) -> ChatPlan:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise FakeError(400, "'messages' must be a list", param="messages")
    reply = control.get("reply")
    if control.get("echo_request"):
        reply = json.dumps(body, sort_keys=True)
    elif not isinstance(reply, str):
        reply = "echo: " + last_text(messages, "user")
    reply = reply.replace("{last_tool_result}", last_text(messages, "tool"))
    if control.get("body") == "huge":
        reply = "x" * int(number(control, "huge_bytes") or HUGE_BYTES)
    chunks = number(control, "chunks")
    pieces = exact_pieces(reply, int(chunks)) if chunks else split_words(reply)
    reply = "".join(pieces)
    tool_calls = build_tool_calls(app, control.get("tool_calls"))
    content = None if tool_calls and "reply" not in control else reply
    reasoning, style = control.get("reasoning"), control.get("reasoning_style", "reasoning_content")
    if style not in ("reasoning_content", "reasoning", "think_tags"):
        raise FakeError(
            400, "fake.reasoning_style must be reasoning_content, reasoning or think_tags"
        )
    reasoning_field = style if isinstance(reasoning, str) and style != "think_tags" else None
    if isinstance(reasoning, str) and style == "think_tags":
        content = f"<think>{reasoning}</think>{content or ''}"
        pieces = ["<thi", "nk>", *split_words(reasoning), "</thi", "nk>", *pieces]
    prompt = word_count(*(message_text(m) for m in messages))
    return ChatPlan(content, pieces, reasoning, reasoning_field, tool_calls, prompt)


def answer_shape(request: web.Request, control: dict[str, Any]) -> str:
    """The request's ``fake.chunk_shape``, else the server's ``--chunk-shape``."""
    shape = control.get("chunk_shape", request.app[SETTINGS].chunk_shape)
    if shape not in CHUNK_SHAPES:
        raise FakeError(400, f"fake.chunk_shape must be one of {', '.join(CHUNK_SHAPES)}")
    return shape


def chat_json(model: str, plan: ChatPlan, shape: str = "plain") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.content}
    if plan.reasoning_field:
        message[plan.reasoning_field] = plan.reasoning
    if plan.tool_calls:
        message["tool_calls"] = plan.tool_calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
    answer = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": plan.usage,
    }
    if shape == "openai":
        answer.update(service_tier="default", system_fingerprint=SYSTEM_FINGERPRINT)
    return answer


def chat_events(enc: ChunkEncoder, plan: ChatPlan, include_usage: bool) -> StreamEvents:
    """Role chunk; reasoning, content and tool-call deltas; finish, usage and [DONE]."""

    def delta(fields: dict[str, Any]) -> bytes:
        return enc.choice({"delta": fields, "finish_reason": None})

    head = [delta({"role": "assistant", "content": ""})]
    body = []
    if plan.reasoning_field and plan.reasoning:
        body += [delta({plan.reasoning_field: p}) for p in split_words(plan.reasoning)]
    if plan.content is not None:
        body += [delta({"content": piece}) for piece in plan.pieces]
    for index, call in enumerate(plan.tool_calls):
        first = {**call, "index": index, "function": {**call["function"], "arguments": ""}}
        body.append(delta({"tool_calls": [first]}))
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), ARGUMENT_FRAGMENT):
            fragment = arguments[start : start + ARGUMENT_FRAGMENT]
            body.append(
                delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            )
    tail = [enc.choice({"delta": {}, "finish_reason": plan.finish_reason})]
    if include_usage:
        tail.append(enc.usage(plan.usage))
    tail.append(DONE_EVENT)
    return head, body, tail


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def chat_completions(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    body = await read_json(request, record)
    model, control = resolve(request, body, scripted=True)
    await apply_preamble(request, control)
    plan = plan_chat(request.app, body, control)
    shape = answer_shape(request, control)
    if control.get("body") == "garbage_sse":
        enc = ChunkEncoder("chat.completion.chunk", "chatcmpl-garbage", int(time.time()), model)
        head, chunks, _ = chat_events(enc, plan, False)
        return await write_stream(
            request, (head + chunks[:2], [*GARBAGE_EVENTS, DONE_EVENT], []), {}
        )
    if isinstance(control.get("raw_events"), list):
        return await write_raw_events(request, control)
    if not body.get("stream"):
        return json_answer(chat_json(model, plan, shape), control)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    include_usage = wants_usage(body)
    kind, created = "chat.completion.chunk", int(time.time())
    enc = ChunkEncoder(kind, completion_id, created, model, shape, include_usage)
    return await write_stream(request, chat_events(enc, plan, include_usage), control)


async def write_raw_events(request: web.Request, control: dict[str, Any]) -> web.StreamResponse:
    """``raw_events``: each string goes out verbatim as one ``data:`` event (a list or object is
    JSON-encoded first), then ``[DONE]`` unless ``"done": false``, the way a misbehaving server
    would stream."""
    events = [
        b"data: " + (e if isinstance(e, str) else dumps(e)).encode() + b"\n\n"
        for e in control["raw_events"]
    ]
    if control.get("done", True):
        events.append(DONE_EVENT)
    return await write_stream(request, ([], events, []), {})


# ---------------------------------------------------------------- responses (native api)


def responses_input_text(value: Any) -> str:
    """The last user text of a Responses ``input`` (a string or items)."""
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return message_text(item)
    return ""


async def responses(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    """A native OpenAI Responses endpoint: echoes the last user text as one message item;
    streams the documented events (``fake.no_completed`` cuts the closing event)."""
    body = await read_json(request, record)
    model, control = resolve(request, body)
    await apply_preamble(request, control)
    reply = control.get("reply")
    text = reply if isinstance(reply, str) else "echo: " + responses_input_text(body.get("input"))
    rid, mid = f"resp_{uuid.uuid4().hex[:24]}", f"msg_{uuid.uuid4().hex[:24]}"
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": mid, "type": "message", "status": "completed", "role": "assistant"}
    item["content"] = [part]
    prompt = word_count(responses_input_text(body.get("input")))
    counts = {"input_tokens": prompt, "output_tokens": word_count(text)}
    counts["total_tokens"] = counts["input_tokens"] + counts["output_tokens"]
    done = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model}
    done.update(status="completed", output=[item], usage=counts)
    if not body.get("stream"):
        return json_answer(done, control)
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **where, "delta": p} for p in split_words(text)),
        {"type": "response.output_text.done", **where, "text": text},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    ]
    if not control.get("no_completed"):
        events.append({"type": "response.completed", "response": done})
    encoded = [
        f"event: {e['type']}\ndata: {dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    ]
    return await write_stream(request, ([], encoded, []), control)


# ---------------------------------------------------------------- messages (native anthropic)


async def anthropic_messages(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    """A native Anthropic Messages endpoint: echoes the last user text as one text block;
    streams the documented events (``fake.no_message_stop`` cuts the closing event,
    ``fake.stream_error`` sends an ``error`` event after the first delta)."""
    body = await read_json(request, record)
    model, control = resolve(request, body)
    await apply_preamble(request, control)
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    reply = control.get("reply")
    text = reply if isinstance(reply, str) else "echo: " + last_text(messages, "user")
    counts = {"input_tokens": word_count(*(message_text(m) for m in messages))}
    counts["output_tokens"] = word_count(text)
    message = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant"}
    message.update(model=model, content=[{"type": "text", "text": text}])
    message.update(stop_reason="end_turn", stop_sequence=None, usage=counts)
    if not body.get("stream"):
        return json_answer(message, control)
    started = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**counts, "output_tokens": 1},
    }
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in split_words(text)
    ]
    if control.get("stream_error"):
        deltas[1:] = [{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}]
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": started},
        block,
        {"type": "ping"},
        *deltas,
        {"type": "content_block_stop", "index": 0},
        {**end, "usage": {"output_tokens": counts["output_tokens"]}},
    ]
    if not control.get("no_message_stop"):
        events.append({"type": "message_stop"})
    encoded = [f"event: {e['type']}\ndata: {dumps(e)}\n\n".encode() for e in events]
    return await write_stream(request, ([], encoded, []), control)


async def anthropic_count_tokens(
    request: web.Request, record: RecordedRequest
) -> web.StreamResponse:
    """Native count_tokens: one token per word of the messages (and 1000 for any tools)."""
    body = await read_json(request, record)
    resolve(request, body)
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    tokens = word_count(*(message_text(m) for m in messages)) + (1000 if body.get("tools") else 0)
    return web.json_response({"input_tokens": tokens})


# ---------------------------------------------------------------- other endpoints


async def list_models(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    return web.Response(body=request.app[SETTINGS].models_body, content_type="application/json")


async def completions(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    """Legacy text completion: echoes the prompt."""
    body = await read_json(request, record)
    model, control = resolve(request, body)
    await apply_preamble(request, control)
    prompt = body.get("prompt", "")
    prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    text = control.get("reply") if isinstance(control.get("reply"), str) else "echo: " + prompt_text
    counts = usage(word_count(prompt_text), word_count(text))
    completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.get("stream"):
        enc = ChunkEncoder("text_completion", completion_id, created, model)
        pieces = [{"text": p, "logprobs": None, "finish_reason": None} for p in split_words(text)]
        tail = [enc.choice({"text": "", "logprobs": None, "finish_reason": "stop"})]
        tail += [enc.usage(counts)] if wants_usage(body) else []
        events = ([], [enc.choice(p) for p in pieces], [*tail, DONE_EVENT])
        return await write_stream(request, events, control)
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
    payload = {"id": completion_id, "object": "text_completion", "created": created}
    return json_answer({**payload, "model": model, "choices": [choice], "usage": counts}, control)


def embed(item: Any, dimensions: int) -> list[float]:
    """A deterministic vector in [-1, 1] from a hash of the input."""
    seed = dumps(item).encode()
    blocks = -(-dimensions * 2 // 32)
    raw = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(blocks))
    return [
        round(int.from_bytes(raw[2 * i : 2 * i + 2]) / 32767.5 - 1, 6) for i in range(dimensions)
    ]


async def embeddings(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    body = await read_json(request, record)
    model, control = resolve(request, body)
    await apply_preamble(request, control)
    items = body.get("input")
    if isinstance(items, str) or (isinstance(items, list) and items and isinstance(items[0], int)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise FakeError(400, "'input' must be a string or a non-empty list", param="input")
    dimensions = body.get("dimensions", 8)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise FakeError(400, "'dimensions' must be an integer from 1 to 4096", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector: Any = embed(item, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = word_count(*(i if isinstance(i, str) else dumps(i) for i in items))
    counts = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_answer({"object": "list", "data": data, "model": model, "usage": counts}, control)


async def images(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    body = await read_json(request, record)
    _, control = resolve(request, body)
    await apply_preamble(request, control)
    count = body.get("n", 1)
    if not isinstance(count, int) or not 1 <= count <= 10:
        raise FakeError(400, "'n' must be an integer from 1 to 10", param="n")
    data = [{"b64_json": PNG_B64}] * count
    return json_answer({"created": int(time.time()), "data": data}, control)


async def speech(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    """64 KiB of deterministic "audio", written in several chunks like a real TTS stream."""
    body = await read_json(request, record)
    _, control = resolve(request, body)
    await apply_preamble(request, control)
    resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
    await resp.prepare(request)
    try:
        for start in range(0, len(SPEECH_AUDIO), SPEECH_WRITE):
            await resp.write(SPEECH_AUDIO[start : start + SPEECH_WRITE])
    except ConnectionResetError:
        pass
    return resp


async def transcriptions(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    """Counts the uploaded file's bytes as they stream in; never holds the file in memory."""
    if not request.content_type.startswith("multipart/"):
        raise FakeError(400, "expected multipart/form-data with 'file' and 'model' fields")
    size = None
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        record.form_fields.append(name)
        if name == "file":
            size = 0
            while chunk := await part.read_chunk():
                size += len(chunk)
        else:
            record.form_values[name] = await part.text()
    if size is None:
        raise FakeError(400, "missing required field 'file'", param="file")
    fields: dict[str, Any] = dict(record.form_values)
    if "fake" in fields:
        try:
            fields["fake"] = json.loads(fields["fake"])
        except ValueError as exc:
            raise FakeError(400, "'fake' must be a JSON object", param="fake") from exc
    _, control = resolve(request, fields)
    await apply_preamble(request, control)
    text = f"transcribed {size} bytes"
    if fields.get("response_format") in ("text", "srt", "vtt"):
        return web.Response(text=text)
    return json_answer({"text": text}, control)


async def unknown_endpoint(request: web.Request, record: RecordedRequest) -> web.StreamResponse:
    raise FakeError(404, f"unknown endpoint {request.method} {request.path}", code="unknown_url")


def check_key(request: web.Request) -> None:
    key = request.app[SETTINGS].require_key
    if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
        raise FakeError(401, "Incorrect API key provided", code="invalid_api_key")


def v1_endpoint(handler: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Record, authenticate, then run ``handler``; turns ``FakeError`` into its answer."""

    @functools.wraps(handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        record = record_request(request)
        try:
            check_key(request)
            return await handler(request, record)
        except FakeError as err:
            return err.response()
        except ClientGone:
            return web.Response(status=499)  # never delivered; aiohttp drops it quietly

    return endpoint


# ---------------------------------------------------------------- scripts and inspection


def queue_script(app: web.Application, model: str, turns: Iterable[dict[str, Any]]) -> int:
    """Append scripted turns for ``model`` (``"*"`` = any model); returns that queue's length.

    Each later chat request for the model pops one turn and answers with it as its control.
    """
    turns = list(turns)
    if not all(isinstance(turn, dict) for turn in turns):
        raise TypeError("every scripted turn must be a dict")
    queue = app[SCRIPTS].setdefault(model, deque())
    queue.extend(dict(turn) for turn in turns)
    return len(queue)


def pop_turn(app: web.Application, model: str) -> dict[str, Any] | None:
    for key in (model, "*"):
        if queue := app[SCRIPTS].get(key):
            return queue.popleft()
    return None


async def post_script(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
        model, turns = body["model"], body["turns"]
        if not isinstance(model, str) or not isinstance(turns, list):
            raise TypeError("model must be a string and turns a list")
        queued = queue_script(request.app, model, turns)
    except (ValueError, KeyError, TypeError) as exc:
        message = f"expected {{'model': str, 'turns': [object, ...]}}: {exc}"
        return FakeError(400, message, code="invalid_script").response()
    return web.json_response({"model": model, "queued": queued})


async def get_script(request: web.Request) -> web.Response:
    return web.json_response({model: list(turns) for model, turns in request.app[SCRIPTS].items()})


async def delete_script(request: web.Request) -> web.Response:
    request.app[SCRIPTS].clear()
    return web.json_response({"cleared": True})


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response([asdict(record) for record in request.app[RECORDED]])


async def delete_requests(request: web.Request) -> web.Response:
    cleared = len(request.app[RECORDED])
    request.app[RECORDED].clear()
    return web.json_response({"cleared": cleared})


def create_app(
    models: list[str] | None = None,
    *,
    name: str = "fake",
    require_key: str | None = None,
    chunk_shape: str = "plain",
) -> web.Application:
    """Build the fake upstream; ``models`` defaults to ``fake-model`` and ``fake-small``;
    ``chunk_shape`` (one of ``CHUNK_SHAPES``) is the default shape of chat answers."""
    if chunk_shape not in CHUNK_SHAPES:
        raise ValueError(f"chunk_shape must be one of {CHUNK_SHAPES}, not {chunk_shape!r}")
    model_ids = tuple(DEFAULT_MODELS if models is None else models)
    listing = [
        {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": name}
        for model in model_ids
    ]
    models_body = dumps({"object": "list", "data": listing}).encode()
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = FakeSettings(model_ids, name, require_key, models_body, chunk_shape)
    app[RECORDED] = []
    app[SCRIPTS] = {}
    app[CALL_IDS] = itertools.count(1)
    routes = [
        ("GET", "/v1/models", list_models),
        ("POST", "/v1/chat/completions", chat_completions),
        ("POST", "/v1/responses", responses),
        ("POST", "/v1/messages", anthropic_messages),
        ("POST", "/v1/messages/count_tokens", anthropic_count_tokens),
        ("POST", "/v1/completions", completions),
        ("POST", "/v1/embeddings", embeddings),
        ("POST", "/v1/images/generations", images),
        ("POST", "/v1/audio/speech", speech),
        ("POST", "/v1/audio/transcriptions", transcriptions),
        ("*", "/v1/{tail:.*}", unknown_endpoint),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, v1_endpoint(handler))
    app.router.add_post("/_fake/script", post_script)
    app.router.add_get("/_fake/script", get_script)
    app.router.add_delete("/_fake/script", delete_script)
    app.router.add_get("/_fake/requests", get_requests)
    app.router.add_delete("/_fake/requests", delete_requests)
    return app


# ---------------------------------------------------------------- command line


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; a short shutdown timeout so hung requests do not hold exit."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        bound = runner.addresses[0][1]
        print(f"fake upstream listening on http://{host}:{bound}/v1", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible upstream for Sparks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument(
        "--models", help="comma-separated model ids (default: fake-model,fake-small)"
    )
    parser.add_argument("--name", default="fake", help="owned_by in /v1/models")
    parser.add_argument("--require-key", help="answer 401 unless 'Authorization: Bearer KEY'")
    parser.add_argument(
        "--chunk-shape",
        choices=CHUNK_SHAPES,
        default="plain",
        help="extra fields real servers put in chat answers (default: plain, none)",
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    app = create_app(
        models, name=args.name, require_key=args.require_key, chunk_shape=args.chunk_shape
    )
    asyncio.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
