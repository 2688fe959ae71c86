"""POST /v1/chat/completions: parse, record, and hand the request to the pipeline."""

from __future__ import annotations

from aiohttp import web

from sparks.pipeline.serve import Call
from sparks.protocol import parse_chat_request, parse_json_object
from sparks.server.body import request_bytes
from sparks.server.state import PIPELINE, RECORD, RESPONDER


async def chat_completions(request: web.Request) -> web.StreamResponse:
    record = request[RECORD]
    body = parse_json_object(await request_bytes(request))
    chat = parse_chat_request(body)
    record.received(
        chat.model, chat.stream, chat.message_count, messages=body.get("messages"), api="chat"
    )
    call = Call(
        "/chat/completions",
        chat.model,
        body,
        stream=chat.stream,
        include_usage=chat.include_usage,
        chat=chat,
    )
    return await request.app[PIPELINE].serve(request[RESPONDER], call)
