"""The OpenAI Responses API front (SPEC §9.1): POST /v1/responses and the stored responses.

The handler translates the request to chat (`sparks.fronts.responses`) and hands it to the one
pipeline, so routing, aliases and fallback, reasoning, `:local`, ghosts, the limiter and the
observer apply unchanged. `ResponsesFront` turns the chat answer back into a response object or
its event stream, or passes a native `api = "responses"` backend's own answer through with
`model` rewritten, and keeps finished responses in the bounded store (`store: true`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from sparks import jsonfast
from sparks.errors import SparksError
from sparks.fronts.responses import ResponsesRequest, parse_responses_request
from sparks.fronts.responses_output import chat_usage, response_from_chat
from sparks.fronts.responses_stream import Event, ResponseStream
from sparks.pipeline.front import UsageSink
from sparks.pipeline.serve import Call
from sparks.pipeline.sse import StreamBroken, parse_chunk
from sparks.protocol import parse_chat_request, parse_json_object
from sparks.server.body import request_bytes
from sparks.server.response_store import ResponseStore, with_item_ids
from sparks.server.state import PIPELINE, RECORD, RESPONDER, RESPONSE_STORE

TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})
MAX_LISTED_ITEMS = 100


def add_routes(app: web.Application) -> None:
    """The four routes and the store they share (one per app)."""
    app[RESPONSE_STORE] = ResponseStore()
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)


async def create_response(request: web.Request) -> web.StreamResponse:
    record = request[RECORD]
    body = parse_json_object(await request_bytes(request))
    store = request.app[RESPONSE_STORE]
    parsed = parse_responses_request(body, lambda rid: store.get(rid).conversation())
    chat_body = parsed.chat_body
    record.received(
        parsed.model,
        parsed.stream,
        len(chat_body["messages"]),
        messages=chat_body["messages"],
        api="responses",
        dropped_tools=parsed.dropped_tools,
    )
    front = ResponsesFront(body, parsed, store)
    request[RESPONDER].front = front
    call = Call(
        "/chat/completions",
        parsed.model,
        chat_body,
        stream=parsed.stream,
        include_usage=True,
        chat=parse_chat_request(chat_body),
        front=front,
    )
    return await request.app[PIPELINE].serve(request[RESPONDER], call)


async def get_response(request: web.Request) -> web.Response:
    request[RECORD].received(api="responses")
    entry = request.app[RESPONSE_STORE].get(request.match_info["response_id"])
    return web.json_response(entry.response, dumps=_dumps)


async def delete_response(request: web.Request) -> web.Response:
    request[RECORD].received(api="responses")
    response_id = request.match_info["response_id"]
    store = request.app[RESPONSE_STORE]
    store.get(response_id)  # 404 when unknown
    store.delete(response_id)
    return web.json_response({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: web.Request) -> web.Response:
    """This response's own input items, newest first unless `order=asc` (OpenAI's default)."""
    request[RECORD].received(api="responses")
    items = list(request.app[RESPONSE_STORE].get(request.match_info["response_id"]).input_items)
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise SparksError(400, "invalid_value", "'order' must be asc or desc", param="order")
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    raw_limit = request.query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LISTED_ITEMS:
        raise SparksError(
            400, "invalid_value", f"'limit' must be 1 to {MAX_LISTED_ITEMS}", param="limit"
        )
    page = items[: int(raw_limit)]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > len(page),
        },
        dumps=_dumps,
    )


def _dumps(value: Any) -> str:
    return jsonfast.dumps(value).decode()


def sse(events: list[Event]) -> bytes:
    """Events as SSE, each with its `event:` line as OpenAI sends them."""
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + jsonfast.dumps(event) + b"\n\n"
        for event in events
    )


def chat_chunks(data: bytes) -> list[dict[str, Any]]:
    """The chat chunk objects in one or more `data: …` events (`[DONE]` skipped)."""
    chunks = []
    for line in data.split(b"\n"):
        if line.startswith(b"data:") and (payload := line[5:].strip()) != b"[DONE]":
            chunks.append(parse_chunk(payload))
    return chunks


class ResponsesFront:
    """One request's translation; it holds the stream state, so `response.failed` continues
    the sequence numbers and keeps the items already sent."""

    api = "responses"
    native_path = "/responses"

    def __init__(self, body: dict[str, Any], parsed: ResponsesRequest, store: ResponseStore):
        self.body = body
        self.parsed = parsed
        self.store = store
        self.stream: ResponseStream | None = None
        self.served_model = parsed.model

    def _keep(self, response: dict[str, Any]) -> None:
        if self.parsed.store and response.get("status") != "failed":
            items = with_item_ids(self.parsed.input_items)
            self.store.put(response, items, self.parsed.history)

    # --- chat answers, translated ------------------------------------------------------

    def answer_json(self, chat_payload: dict[str, Any], served_model: str) -> Any:
        response = response_from_chat(self.parsed, chat_payload, served_model)
        self._keep(response)
        return response

    async def answer_events(
        self, chat_events: AsyncIterator[bytes], served_model: str
    ) -> AsyncIterator[bytes]:
        """The first chat event is read before `response.created` goes out, so a backend
        that fails at once still gets an ordinary JSON error."""
        self.served_model = served_model
        stream = self.stream = ResponseStream(self.parsed, served_model)
        started = False
        async for data in chat_events:
            chunks = chat_chunks(data)
            events = [] if started else stream.start()
            started = True
            for chunk in chunks:
                events += stream.feed(chunk)
            if events:
                yield sse(events)
        tail = stream.finish()
        yield sse(tail if started else stream.start() + tail)
        assert stream.response is not None
        self._keep(stream.response)

    def stream_error(self, error: SparksError) -> bytes:
        if self.stream is None:
            self.stream = ResponseStream(self.parsed, self.served_model)
        return sse(self.stream.failure(error.code, error.message))

    def stream_end(self) -> bytes:
        return b""  # response.completed / response.failed already closed the stream

    def error_body(self, error: SparksError, include_trace: bool) -> bytes:
        return error.body_bytes(include_trace)

    # --- a native `api = "responses"` backend --------------------------------------------

    def native_body(self, upstream_model: str) -> bytes:
        """The client's request with `model` rewritten; a `previous_response_id` Sparks
        resolved itself becomes the explicit conversation (the upstream never saw that id)."""
        body = {**self.body, "model": upstream_model}
        if self.parsed.previous_response_id and self.parsed.history:
            body.pop("previous_response_id")
            history = [
                {k: v for k, v in item.items() if k not in ("id", "status")}
                for item in self.parsed.history
                if item.get("type") != "reasoning"
            ]
            body["input"] = [*history, *self.parsed.input_items]
        return jsonfast.dumps(body)

    def native_json(self, payload: Any, served_model: str, note_usage: UsageSink) -> Any:
        if isinstance(payload, dict):
            payload["model"] = served_model
            usage = chat_usage(payload.get("usage"))
            if usage is not None:
                note_usage(usage)
            if isinstance(payload.get("id"), str) and payload.get("status") == "completed":
                self._keep(payload)
        return payload

    async def native_events(
        self, payloads: AsyncIterator[bytes], served_model: str, note_usage: UsageSink
    ) -> AsyncIterator[bytes]:
        self.served_model = served_model
        self.stream = ResponseStream(self.parsed, served_model)  # numbers a late failure
        ended = False
        async for payload in payloads:
            try:
                event = jsonfast.loads(payload)
            except (ValueError, RecursionError):
                raise StreamBroken(f"non-JSON stream line: {payload[:80]!r}") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise StreamBroken("Responses stream event without a 'type'")
            kind = event["type"]
            if kind == "error":
                message = event.get("message") or event.get("code") or "error"
                raise StreamBroken(f"upstream reported an error mid-stream: {message}")
            if isinstance(event.get("sequence_number"), int):
                self.stream.sequence = event["sequence_number"] + 1
            response = event.get("response")
            if isinstance(response, dict):
                response["model"] = served_model
                if kind in TERMINAL_TYPES:
                    ended = True
                    usage = chat_usage(response.get("usage"))
                    if usage is not None:
                        note_usage(usage)
                    if kind != "response.failed" and isinstance(response.get("id"), str):
                        self._keep(response)
            yield b"event: " + kind.encode() + b"\ndata: " + jsonfast.dumps(event) + b"\n\n"
        if not ended:
            raise StreamBroken("upstream Responses stream ended before response.completed")
