"""Serving ghosts over HTTP: classifier decision, model calls through the upstream chain, and
the client's JSON or SSE answer. The loop itself lives in `ghosts/` and speaks no HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import jsonfast
from .catalog import Catalog
from .config import Config
from .errors import SparksError, error_body
from .ghosts.classifier import Classifier, Decision
from .ghosts.definitions import GhostSpec, ghost_specs
from .ghosts.loop import LoopSink, Turn, run_ghost_loop
from .ghosts.prompt import system_prompt
from .ghosts.tools import ToolContext, tool_schemas
from .protocol import DONE_EVENT, ChatRequest, chat_chunk, chat_completion, sse_event, usage_chunk
from .reasoning import DeltaNormalizer, normalize_message
from .relay import cost_of
from .routing import Route, Target
from .state import OBSERVER, RECORD
from .stream_relay import StreamGarbage, iter_lines
from .tracking import RequestRecord
from .upstream import Upstreams

TOOL_TIMEOUT_S = 60.0


class ClientSink(LoopSink):
    """Streams the loop to the client as SSE (prepared lazily, so an early failure can still be
    a JSON error), or collects it for a non-streaming answer."""

    def __init__(
        self,
        request: web.Request,
        record: RequestRecord,
        spec: GhostSpec,
        headers: dict[str, str],
        stream: bool,
    ) -> None:
        self.request = request
        self.record = record
        self.spec = spec
        self.headers = headers
        self.stream = stream
        self.response: web.StreamResponse | None = None
        self.cid = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.content_parts: list[str] = []
        self.tools_ms = 0.0

    def timing(self) -> dict[str, str]:
        """Server-Timing so far: Sparks' own time, model calls, and local tool calls."""
        upstream = self.record.upstream_ms
        own = max(0.0, self.record.elapsed_ms() - upstream - self.tools_ms)
        value = f"sparks;dur={own:.2f}, upstream;dur={upstream:.2f}, tools;dur={self.tools_ms:.2f}"
        return {"Server-Timing": value}

    async def _send(self, delta: dict[str, Any], finish: str | None = None) -> None:
        if self.response is None:
            self.response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    **self.headers,
                    **self.timing(),
                }
            )
            await self.response.prepare(self.request)
            self.record.mark_first_byte()
            first = {"role": "assistant", "content": ""}
            await self.response.write(sse_event(self._chunk(first)))
        await self.response.write(sse_event(self._chunk(delta, finish)))

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return chat_chunk(self.cid, self.spec.sparks_id, delta, finish, self.created)

    async def progress(self, line: str) -> None:
        if self.stream:
            await self._send({"reasoning_content": line + "\n"})

    async def reasoning(self, text: str) -> None:
        if self.stream and text:
            await self._send({"reasoning_content": text})

    async def content(self, text: str) -> None:
        self.content_parts.append(text)
        if self.stream and text:
            await self._send({"content": text})

    def step(self, step: int, tool: str, summary: str, ok: bool, duration_ms: float) -> None:
        self.tools_ms += duration_ms
        self.record.emit(
            "ghost.step",
            ghost=self.spec.name,
            step=step,
            tool=tool,
            args_summary=summary,
            ok=ok,
            duration_ms=duration_ms,
        )

    async def finish(self, finish_reason: str, usage: dict[str, int], include_usage: bool) -> None:
        await self._send({}, finish_reason)
        if include_usage:
            await self._write(sse_event(usage_chunk(self.cid, self.spec.sparks_id, usage)))

    async def fail(self, exc: SparksError) -> None:
        await self._write(sse_event(error_body(exc.status, exc.code, exc.message)))

    async def _write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    async def done(self) -> web.StreamResponse:
        assert self.response is not None
        await self.response.write(DONE_EVENT)
        return self.response


class GhostRunner:
    def __init__(self, config: Config, catalog: Catalog, upstreams: Upstreams) -> None:
        self.config = config
        self.catalog = catalog
        self.upstreams = upstreams
        self.specs = {spec.name: spec for spec in ghost_specs(config)}
        self.classifier = Classifier(list(self.specs.values()), config.classifier.timeout_s)

    async def handle(self, request: web.Request, chat: ChatRequest, route: Route) -> Any:
        record = request[RECORD]
        if chat.body.get("tools"):
            raise SparksError(
                400,
                "unsupported_option",
                f"'tools' cannot be sent to a ghost ({route.model}): ghosts bring their own "
                "tools; call a backend model to use yours",
                param="tools",
            )
        if isinstance(chat.body.get("n"), int) and chat.body["n"] > 1:
            raise SparksError(400, "unsupported_option", "ghosts answer with n = 1", param="n")
        decision: Decision | None = None
        if route.kind == "classify":
            ask = None
            if self.config.classifier.model:

                async def ask(messages: list[dict[str, str]]) -> str:
                    return await self._ask_classifier(messages, record, route.local_only)

            decision = await self.classifier.decide(chat.body["messages"], ask)
            spec = self.specs[decision.ghost]
        else:
            spec = self.specs[route.chain[0].ghost or ""]
        chain = self._model_chain(spec, route.local_only)
        label = f"ghost:{spec.name}"
        if decision is not None:
            label += f"; classifier={decision.method}"
        record.emit(
            "route.resolved",
            model=route.model,
            kind="ghost" if decision is None else "classify",
            target=spec.sparks_id,
            chain=[t.sparks_id for t in chain],
            ghost=spec.name,
            classifier=None
            if decision is None
            else {
                "method": decision.method,
                "latency_ms": decision.latency_ms,
                "note": decision.note or None,
            },
        )
        record.served_model = spec.sparks_id
        sink = ClientSink(request, record, spec, {"X-Sparks-Route": label}, chat.stream)
        return await self._run(request, chat, spec, chain, sink, record)

    def _model_chain(self, spec: GhostSpec, local_only: bool) -> tuple[Target, ...]:
        model = spec.model or self._first_model(local_only)
        if not model:
            raise SparksError(
                503, "no_backend", f"ghost {spec.name} has no model: configure a backend"
            )
        route = self.catalog.table.resolve(model + (":local" if local_only else ""))
        chain = tuple(t for t in route.chain if t.backend)
        if not chain:
            raise SparksError(
                503, "no_backend", f"ghost {spec.name}'s model {model!r} is not a backend model"
            )
        return chain

    def _first_model(self, local_only: bool) -> str:
        for backend, models in self.catalog.models.items():
            if models and (not local_only or backend in self.catalog.table.local_backends):
                return f"{backend}/{models[0]}"
        return ""

    async def _run(
        self,
        request: web.Request,
        chat: ChatRequest,
        spec: GhostSpec,
        chain: tuple[Target, ...],
        sink: ClientSink,
        record: RequestRecord,
    ) -> Any:
        tools = tool_schemas(spec.tools, spec.read_only)
        ctx = ToolContext(
            workspace=Path(spec.workspace),
            read_only=spec.read_only,
            sandbox=spec.sandbox,
            log_content=request.app[OBSERVER].log_content,
            timeout_s=TOOL_TIMEOUT_S,
            allowed_tools=frozenset(spec.tools),
        )
        messages = [
            {
                "role": "system",
                "content": system_prompt(spec, tuple(t["function"]["name"] for t in tools)),
            },
            *chat.body["messages"],
        ]
        extra = {
            k: v
            for k, v in chat.body.items()
            if k in ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop")
        }

        async def call_model(
            conversation: list[dict[str, Any]], tool_list: list[dict[str, Any]], live: Any
        ) -> Turn:
            body = {**extra, "messages": conversation, "tools": tool_list, "tool_choice": "auto"}
            return await self._model_turn(chain, body, record, live, spec.step_timeout_s)

        try:
            async with asyncio.timeout(spec.run_timeout_s):
                result = await run_ghost_loop(
                    spec, messages, tools, ctx, call_model, sink, chat.stream
                )
        except TimeoutError:
            error = SparksError(
                504, "upstream_timeout", f"ghost {spec.name} ran past run_timeout_s"
            )
            if sink.response is None:
                raise error from None
            record.fail(200, error.code, error.message)  # the client already got a 200
            await sink.fail(error)
            return await sink.done()
        except SparksError as exc:
            if sink.response is None:
                raise
            record.fail(200, exc.code, exc.message)  # the client already got a 200
            await sink.fail(exc)
            return await sink.done()
        record.usage = result.usage
        if chat.stream:
            await sink.finish(result.finish_reason, result.usage, chat.include_usage)
            record.complete(200, content=result.content)
            return await sink.done()
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.progress:
            message["reasoning_content"] = "\n".join(result.progress)
        payload = chat_completion(
            sink.cid, spec.sparks_id, message, result.finish_reason, result.usage
        )
        record.complete(200, content=message)
        return web.json_response(payload, headers={**sink.headers, **sink.timing()})

    async def _model_turn(
        self,
        chain: tuple[Target, ...],
        body: dict[str, Any],
        record: RequestRecord,
        live: LoopSink | None,
        timeout_s: float,
    ) -> Turn:
        stream = live is not None

        def make_body(target: Target) -> bytes:
            payload = {**body, "model": target.upstream_model}
            if stream:
                payload["stream"] = True
                payload["stream_options"] = {"include_usage": True}
            return jsonfast.dumps(payload)

        try:
            async with asyncio.timeout(timeout_s):
                served = await self.upstreams.open_chain(
                    chain, "/chat/completions", make_body, record, stream=stream
                )
                record.upstream_ms += served.upstream_ms
                if not stream:
                    turn = turn_from_message(served.payload)
                else:
                    try:
                        turn = await turn_from_stream(served, live)
                    finally:
                        served.close()
                step_cost = cost_of(self.catalog, served, turn.usage)
                if step_cost is not None:
                    record.cost = round((record.cost or 0.0) + step_cost, 8)
                return turn
        except TimeoutError:
            raise SparksError(
                504, "upstream_timeout", f"a ghost model step took longer than {timeout_s:g}s"
            ) from None

    async def _ask_classifier(
        self, messages: list[dict[str, str]], record: RequestRecord, local_only: bool
    ) -> str:
        """One short call to the classifier model; under `:local` only loopback targets, so the
        user's words never leave the machine (a non-local classifier raises → heuristic)."""
        model = self.config.classifier.model + (":local" if local_only else "")
        route = self.catalog.table.resolve(model)
        chain = tuple(t for t in route.chain if t.backend)
        body = {"messages": messages, "max_tokens": 16, "temperature": 0}

        def make_body(target: Target) -> bytes:
            return jsonfast.dumps({**body, "model": target.upstream_model})

        served = await self.upstreams.open_chain(
            chain, "/chat/completions", make_body, record, stream=False
        )
        return turn_from_message(served.payload).content


def turn_from_message(payload: Any) -> Turn:
    try:
        choice = payload["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise SparksError(502, "upstream_error", "ghost model returned no choices") from None
    normalize_message(message)
    return Turn(
        content=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
        tool_calls=list(message.get("tool_calls") or []),
        finish_reason=choice.get("finish_reason"),
        usage=payload.get("usage"),
    )


async def turn_from_stream(served: Any, live: LoopSink) -> Turn:
    """Assemble a streamed model turn, passing content and reasoning deltas through live."""
    turn = Turn()
    calls: dict[int, dict[str, Any]] = {}
    normalizer = DeltaNormalizer()
    try:
        async for line in iter_lines(served.response.content.iter_any()):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = jsonfast.loads(payload)
            normalizer.normalize_chunk(chunk)
            if chunk.get("usage"):
                turn.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    turn.finish_reason = choice["finish_reason"]
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    turn.reasoning += reasoning
                    await live.reasoning(reasoning)
                if delta.get("content"):
                    turn.content += delta["content"]
                    await live.content(delta["content"])
                for part in delta.get("tool_calls") or []:
                    entry = calls.setdefault(
                        int(part.get("index", 0)),
                        {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                    )
                    entry["id"] = part.get("id") or entry["id"]
                    function = part.get("function") or {}
                    entry["function"]["name"] += function.get("name") or ""
                    entry["function"]["arguments"] += function.get("arguments") or ""
    except (ValueError, StreamGarbage, aiohttp.ClientPayloadError) as exc:
        raise SparksError(502, "upstream_error", f"ghost model stream broke: {exc}") from None
    for reasoning, content in normalizer.flush().values():
        turn.reasoning += reasoning
        turn.content += content
        await live.reasoning(reasoning)
        await live.content(content)
    turn.tool_calls = [calls[i] for i in sorted(calls)]
    return turn
