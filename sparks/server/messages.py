"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages front (SPEC §9.2).

The handler translates the request to chat (sparks/fronts/messages.py) and hands it to the one
pipeline; `MessagesFront` turns the chat answer back into a message or its stream events, or
passes a native `api = "anthropic"` backend's own answer through with `model` rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from sparks import jsonfast
from sparks.errors import SparksError
from sparks.fronts.messages import error_object, estimate_tokens, to_chat
from sparks.fronts.messages_answer import message_from_chat, new_message_id, usage_to_chat
from sparks.fronts.messages_stream import (
    MessageStream,
    NativeStream,
    error_event,
    ping_event,
)
from sparks.pipeline.front import UsageSink
from sparks.pipeline.serve import Call
from sparks.pipeline.sse import StreamBroken, parse_chunk
from sparks.protocol import parse_chat_request, parse_json_object, require_model
from sparks.server.body import request_bytes
from sparks.server.state import PIPELINE, RECORD, RESPONDER

PING_INTERVAL_S = 5.0  # a ping when nothing arrived for this long (a ghost at work)
COUNT_PATH = "/messages/count_tokens"


class MessagesFront:
    """The Front (sparks/pipeline/front.py) of one Messages request; also shapes the errors of
    every /v1/messages path, even those raised before the handler (set by the middleware)."""

    api = "anthropic"
    native_path = "/messages"

    def __init__(self, raw: bytes = b"", stops: tuple[str, ...] = ()) -> None:
        self.raw = raw
        self.stops = stops
        self.ping_interval_s = PING_INTERVAL_S

    def native_body(self, upstream_model: str) -> bytes:
        body = jsonfast.loads(self.raw)
        body["model"] = upstream_model
        return jsonfast.dumps(body)

    def answer_json(self, chat_payload: dict[str, Any], served_model: str) -> Any:
        return message_from_chat(chat_payload, served_model, self.stops)

    async def answer_events(
        self, chat_events: AsyncIterator[bytes], served_model: str
    ) -> AsyncIterator[bytes]:
        """Chat chunk events as Messages events, with a `ping` whenever nothing arrived for
        `ping_interval_s` (the first ping also sends `message_start`, so the headers go out)."""
        stream = MessageStream(new_message_id(), served_model, self.stops)
        waiting: asyncio.Future[bytes] | None = None
        try:
            while True:
                waiting = asyncio.ensure_future(anext(chat_events))
                while not (await asyncio.wait({waiting}, timeout=self.ping_interval_s))[0]:
                    yield stream.start() + ping_event()
                try:
                    event = waiting.result()
                except StopAsyncIteration:
                    break
                out = b"".join(stream.feed(parse_chunk(p)) for p in _payloads(event))
                if out:
                    yield out
            yield stream.finish()
        finally:
            if waiting is not None and not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await waiting
            with contextlib.suppress(Exception):
                await chat_events.aclose()  # type: ignore[attr-defined]

    def native_json(self, payload: Any, served_model: str, note_usage: UsageSink) -> Any:
        if isinstance(payload, dict):
            payload["model"] = served_model
            note_usage(usage_to_chat(payload.get("usage")))
        return payload

    async def native_events(
        self, payloads: AsyncIterator[bytes], served_model: str, note_usage: UsageSink
    ) -> AsyncIterator[bytes]:
        native = NativeStream(served_model)
        try:
            async for payload in payloads:
                try:
                    event = native.feed(payload)
                except (ValueError, RecursionError):
                    raise StreamBroken(f"non-JSON or untyped event: {payload[:80]!r}") from None
                yield event
                if native.stopped:
                    return
            raise StreamBroken("upstream stream ended before message_stop")
        finally:
            note_usage(native.chat_usage())

    def stream_error(self, error: SparksError) -> bytes:
        return error_event(error)

    def stream_end(self) -> bytes:
        return b""  # message_stop (or the error event) already closed the stream

    def error_body(self, error: SparksError, include_trace: bool) -> bytes:
        body = error_object(error)
        if include_trace and error.route_trace is not None:
            body["error"]["route_trace"] = error.route_trace
        return jsonfast.dumps(body)


def _payloads(event: bytes) -> list[bytes]:
    """The `data:` payloads of one or more complete chat events."""
    return [
        line[5:].strip()
        for line in event.split(b"\n")
        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]"
    ]


async def messages(request: web.Request) -> web.StreamResponse:
    record = request[RECORD]
    raw = await request_bytes(request)
    body = parse_json_object(raw)
    model = require_model(body)
    try:
        translated = to_chat(body)
    except SparksError:
        record.received(model, body.get("stream") is True, None, api="messages")
        raise
    chat_body = translated.chat
    chat = parse_chat_request(chat_body)
    dropped = translated.dropped_tools  # server tools Sparks cannot run (SPEC §9.2)
    extra = {"dropped_tools": dropped} if dropped else {}
    record.received(
        model,
        translated.stream,
        len(body["messages"]),
        messages=body.get("messages"),
        api="messages",
        **extra,
    )
    front = MessagesFront(raw, translated.stop_sequences)
    responder = request[RESPONDER]
    responder.front = front
    call = Call(
        "/chat/completions",
        model,
        chat_body,
        stream=translated.stream,
        include_usage=True,
        chat=chat,
        front=front,
    )
    return await request.app[PIPELINE].serve(responder, call)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """`{"input_tokens": N}`: a native Anthropic backend counts; otherwise an estimate
    (characters / 4 over the translated messages and tools; see docs/messages.md)."""
    record = request[RECORD]
    raw = await request_bytes(request)
    body = parse_json_object(raw)
    model = require_model(body)
    translated = to_chat(body)
    record.received(model, False, len(body["messages"]), api="messages")
    pipeline = request.app[PIPELINE]
    route = pipeline.catalog.table.resolve(model)
    backends = pipeline.upstreams.backends
    if route.chain and all(
        t.backend is not None and backends[t.backend].api == "anthropic" for t in route.chain
    ):
        front = CountFront(raw)
        request[RESPONDER].front = front
        call = Call(COUNT_PATH, model, body, front=front)
        return await pipeline.serve(request[RESPONDER], call)
    return web.json_response({"input_tokens": estimate_tokens(translated.chat)})


class CountFront(MessagesFront):
    """count_tokens on a native backend: its own `/messages/count_tokens` answer, as it is."""

    native_path = COUNT_PATH

    def native_json(self, payload: Any, served_model: str, note_usage: UsageSink) -> Any:
        return payload
