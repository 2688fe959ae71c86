"""The one serving path: route → plan → `route.resolved` → open the chain or run the ghost →
hand the answer to the responder. Chat, every other endpoint and every front call `serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sparks import jsonfast
from sparks.backends.catalog import Catalog
from sparks.backends.reasoning import apply_reasoning, normalize_message
from sparks.backends.upstream import Served, Upstreams
from sparks.observe.record import RequestRecord
from sparks.pipeline.answer import Answer
from sparks.pipeline.front import Front
from sparks.pipeline.ghost_answer import Ghosts
from sparks.pipeline.plan import Plan, backend_plan, wants_ghost
from sparks.pipeline.relay import ChunkRelay
from sparks.pipeline.responder import Responder
from sparks.pipeline.sse import StreamBroken, data_payloads, payload_batches
from sparks.protocol import ChatRequest
from sparks.routing import Target

FormFactory = Callable[[Target], aiohttp.FormData]


@dataclass(frozen=True)
class Call:
    """One request as the pipeline sees it, whichever front it came through."""

    path: str  # the upstream path: /chat/completions, /embeddings, ...
    model: str
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    chat: ChatRequest | None = None  # set for chat requests: only those can reach a ghost
    raw: bool = False  # the answer's bytes pass through untouched (audio)
    form: FormFactory | None = None  # multipart uploads build a fresh form per attempt
    front: Front | None = None  # Responses / Messages (SPEC §9); None for OpenAI's own shapes


class Pipeline:
    """The long-lived parts a request is served with (one per app)."""

    def __init__(
        self, catalog: Catalog, upstreams: Upstreams, ghosts: Ghosts, log_content: bool
    ) -> None:
        self.catalog = catalog
        self.upstreams = upstreams
        self.ghosts = ghosts
        self.log_content = log_content

    async def serve(self, responder: Responder, call: Call) -> web.StreamResponse:
        record = responder.record
        route = self.catalog.table.resolve(call.model)
        if call.chat is not None and wants_ghost(route):
            plan = await self.ghosts.plan(route, call.chat, record)
            record.emit("route.resolved", **plan.event_fields())
            answer = await self.ghosts.answer(plan, call.chat, record, self.log_content)
            return await responder.answer(answer)
        plan = backend_plan(route, ghosts_allowed=False)
        record.emit("route.resolved", **plan.event_fields())
        served = await self.upstreams.open_chain(
            plan.chain,
            lambda target: self._upstream_path(call, target),
            lambda target: self._upstream_body(call, target),
            record,
            stream=call.stream,
            raw=call.raw,
        )
        record.upstream_ms = served.upstream_ms
        record.fallback_from = served.fallback_from
        self.catalog.note_use(route, served.target)
        return await responder.answer(self._backend_answer(plan, served, call, record, responder))

    def _native(self, call: Call, target: Target) -> bool:
        """Whether this target speaks the request's front API natively (SPEC §9)."""
        if call.front is None or target.backend is None:
            return False
        return self.upstreams.backends[target.backend].api == call.front.api

    def _upstream_path(self, call: Call, target: Target) -> str:
        return call.front.native_path if call.front and self._native(call, target) else call.path

    def _upstream_body(self, call: Call, target: Target) -> bytes | aiohttp.FormData:
        """Every field forwarded unchanged but `model`, the reasoning fields (mapped to the
        model's dialect) and, for streams, `stream_options.include_usage` (always requested).
        A backend that speaks the front's API natively gets the client's own request."""
        if call.form is not None:
            return call.form(target)
        if call.front is not None and self._native(call, target):
            return call.front.native_body(target.upstream_model or "")
        body = call.body
        if call.chat is not None:
            mapped = apply_reasoning(body, self.catalog.dialect(target))
            body = dict(body) if mapped is body else mapped
        else:
            body = dict(body)
        body["model"] = target.upstream_model
        if call.stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return jsonfast.dumps(body)

    def _backend_answer(
        self,
        plan: Plan,
        served: Served,
        call: Call,
        record: RequestRecord,
        responder: Responder,
    ) -> Answer:
        target = served.target
        headers = {"X-Sparks-Route": f"{target.kind}:{target.sparks_id}"}
        if served.fallback_from:
            headers["X-Sparks-Fallback-From"] = served.fallback_from
        answer = Answer(target.sparks_id, headers, close=served.close)
        answer.native = self._native(call, target)
        if answer.native:
            assert call.front is not None
            self._native_answer(answer, call.front, served, record, responder)
        elif call.raw or call.form is not None:
            assert served.response is not None
            answer.body = _raw_body(served)
            answer.content_type = served.response.headers.get(
                "Content-Type", "application/octet-stream"
            )
        elif call.stream:
            answer.events = self._relay(served, call, record)
        else:
            answer.payload = self._rewrite_payload(served, record, responder.include_trace)
            answer.content = _message_of(answer.payload)
        return answer

    def _native_answer(
        self,
        answer: Answer,
        front: Front,
        served: Served,
        record: RequestRecord,
        responder: Responder,
    ) -> None:
        """A backend's own answer in the front's API, passed through with `model` rewritten."""

        def note_usage(usage: dict[str, Any]) -> None:
            record.usage = usage
            record.cost = self.catalog.cost(served.target, usage)

        served_model = served.target.sparks_id
        if served.response is not None:
            chunks = served.response.content.iter_any()
            payloads = data_payloads(chunks, require_done=False, watchdog=served.watchdog())
            answer.events = front.native_events(payloads, served_model, note_usage)
        else:
            answer.payload = front.native_json(served.payload, served_model, note_usage)

    async def _relay(
        self, served: Served, call: Call, record: RequestRecord
    ) -> AsyncIterator[bytes]:
        assert served.response is not None
        relay = ChunkRelay(served.target.sparks_id, call.include_usage)
        chunks = served.response.content.iter_any()
        try:
            async for batch in payload_batches(chunks, watchdog=served.watchdog()):
                out: list[bytes] = []
                try:
                    for payload in batch:
                        event = relay.feed(payload)
                        if event is not None:
                            out.append(event)
                finally:  # what came before a broken event still goes out first
                    if out:
                        yield b"".join(out)
            tail = relay.finish()
            if tail is not None:
                yield tail
        finally:
            record.usage = relay.usage
            record.cost = self.catalog.cost(served.target, relay.usage)

    def _rewrite_payload(self, served: Served, record: RequestRecord, include_trace: bool) -> Any:
        """A whole upstream JSON answer with `model` rewritten to the Sparks id."""
        payload = served.payload
        if isinstance(payload, dict):
            if "model" in payload:
                payload["model"] = served.target.sparks_id
            usage = payload.get("usage")
            if isinstance(usage, dict):
                record.usage = usage
                record.cost = self.catalog.cost(served.target, usage)
            choices = payload.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                    normalize_message(choice["message"])
            if include_trace:
                payload["route_trace"] = [a.trace() for a in served.attempts]
        return payload


async def _raw_body(served: Served) -> AsyncIterator[bytes]:
    assert served.response is not None
    watchdog = served.watchdog()
    try:
        async for chunk in served.response.content.iter_any():
            if watchdog is not None:
                watchdog.touch()
            yield chunk
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
        stalled = watchdog is not None and watchdog.fired
        reason = "stalled past timeout_s" if stalled else f"broke: {type(exc).__name__}"
        raise StreamBroken(f"upstream body {reason}") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _message_of(payload: Any) -> Any:
    try:
        return payload["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
