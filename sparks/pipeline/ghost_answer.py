"""Ghosts as answers: pick the ghost (classifier), run its loop with model calls through the
upstream chain, and hand the responder a JSON payload or a stream of chunk events, the same
interface a backend answer has. The loop itself lives in `ghosts/` and speaks no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from sparks import jsonfast
from sparks.backends.catalog import Catalog
from sparks.backends.upstream import Upstreams
from sparks.config import Config
from sparks.errors import SparksError
from sparks.ghosts.classifier import Classifier, Decision
from sparks.ghosts.client_tools import offer_tools
from sparks.ghosts.definitions import GhostSpec, ghost_specs
from sparks.ghosts.loop import LoopResult, run_ghost_loop
from sparks.ghosts.prompt import system_prompt
from sparks.ghosts.tools import offered_tool_schemas, tool_context
from sparks.observe.observer import events_path
from sparks.observe.record import RequestRecord
from sparks.pipeline.answer import Answer
from sparks.pipeline.ghost_memory import GhostMemory
from sparks.pipeline.ghost_turns import model_turn, turn_from_message
from sparks.pipeline.plan import Plan
from sparks.protocol import ChatRequest, chat_chunk, chat_completion, sse_event, usage_chunk
from sparks.routing import LOCAL_SUFFIX, Route, Target

TOOL_TIMEOUT_S = 60.0
FORWARDED_FIELDS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop")
_END = b""


class GhostEvents:
    """The loop's live output (LoopSink) as chat-completion chunk events in a queue."""

    def __init__(self, spec: GhostSpec, record: RequestRecord, stream: bool) -> None:
        self.spec = spec
        self.record = record
        self.stream = stream
        self.cid = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent_role = False

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_event(chat_chunk(self.cid, self.spec.sparks_id, delta, finish, self.created))

    def send(self, delta: dict[str, Any], finish: str | None = None) -> None:
        if not self.sent_role:
            self.sent_role = True
            self.queue.put_nowait(self.chunk({"role": "assistant", "content": ""}))
        self.queue.put_nowait(self.chunk(delta, finish))

    async def progress(self, line: str) -> None:
        if self.stream:
            self.send({"reasoning_content": line + "\n"})

    async def reasoning(self, text: str) -> None:
        if self.stream and text:
            self.send({"reasoning_content": text})

    async def content(self, text: str) -> None:
        if self.stream and text:
            self.send({"content": text})

    def tool_calls(self, calls: list[dict[str, Any]]) -> None:
        """Calls handed back to the client: one ordinary tool-call delta each."""
        for index, call in enumerate(calls):
            self.send({"tool_calls": [{"index": index, **call}]})

    def step(
        self, step: int, tool: str, summary: str, ok: bool, duration_ms: float, note: str = ""
    ) -> None:
        self.record.tools_ms = (self.record.tools_ms or 0.0) + duration_ms
        extra = {"note": note} if note else {}
        self.record.emit(
            "ghost.step",
            ghost=self.spec.name,
            step=step,
            tool=tool,
            args_summary=summary,
            ok=ok,
            duration_ms=duration_ms,
            **extra,
        )


class Ghosts:
    """Every configured ghost, the classifier that picks one for `sparks`, and their runs."""

    def __init__(self, config: Config, catalog: Catalog, upstreams: Upstreams) -> None:
        self.config = config
        self.catalog = catalog
        self.upstreams = upstreams
        specs = ghost_specs(config, protected=[events_path(config.observer)])
        self.specs = {spec.name: spec for spec in specs}
        self.classifier = Classifier(
            list(self.specs.values()),
            config.classifier.timeout_s,
            config.ghost_defaults.default_ghost,
        )
        self.memory = GhostMemory()

    async def plan(self, route: Route, chat: ChatRequest, record: RequestRecord) -> Plan:
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
        # a refusal or a malformed `tools`/`tool_choice` is a 400 before anything runs
        offer_tools(spec.client_tools, spec.name, offered_tool_schemas(spec), chat.body)
        return Plan(route, self._model_chain(spec, route.local_only), spec, decision)

    def _model_chain(self, spec: GhostSpec, local_only: bool) -> tuple[Target, ...]:
        model = spec.model or self.catalog.first_model(local_only)
        if not model:
            raise SparksError(
                503, "no_backend", f"ghost {spec.name} has no model: configure a backend"
            )
        route = self.catalog.table.resolve(model + (LOCAL_SUFFIX if local_only else ""))
        chain = tuple(t for t in route.chain if t.backend)
        if not chain:
            raise SparksError(
                503, "no_backend", f"ghost {spec.name}'s model {model!r} is not a backend model"
            )
        return chain

    async def answer(
        self, plan: Plan, chat: ChatRequest, record: RequestRecord, log_content: bool
    ) -> Answer:
        spec = plan.ghost
        assert spec is not None
        label = f"ghost:{spec.name}"
        if plan.decision is not None:
            label += f"; classifier={plan.decision.method}"
        record.tools_ms = 0.0
        sink = GhostEvents(spec, record, chat.stream)
        answer = Answer(spec.sparks_id, {"X-Sparks-Route": label})
        if chat.stream:
            answer.events = self._events(plan, chat, record, sink, log_content)
            return answer
        result = await self._run(plan, chat, record, sink, log_content)
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.handoff is not None:
            message["content"] = result.content or None
            message["tool_calls"] = result.handoff.calls
        if result.progress:
            message["reasoning_content"] = "\n".join(result.progress)
        answer.payload = chat_completion(
            sink.cid, spec.sparks_id, message, result.finish_reason, result.usage
        )
        answer.content = message
        return answer

    async def _events(
        self,
        plan: Plan,
        chat: ChatRequest,
        record: RequestRecord,
        sink: GhostEvents,
        log_content: bool,
    ) -> AsyncIterator[bytes]:
        """Drive the loop in a task and yield its events; closing this stops the loop."""
        outcome: list[LoopResult] = []

        async def drive() -> None:
            try:
                outcome.append(await self._run(plan, chat, record, sink, log_content))
            finally:
                sink.queue.put_nowait(_END)

        task = asyncio.create_task(drive())
        try:
            while (event := await sink.queue.get()) is not _END:
                yield event
            await task  # re-raises the loop's failure
            result = outcome[0]
            if result.handoff is not None:
                sink.tool_calls(result.handoff.calls)
            sink.send({}, result.finish_reason)
            if chat.include_usage:
                sink.queue.put_nowait(
                    sse_event(usage_chunk(sink.cid, sink.spec.sparks_id, result.usage))
                )
            while not sink.queue.empty():
                yield sink.queue.get_nowait()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(
        self,
        plan: Plan,
        chat: ChatRequest,
        record: RequestRecord,
        sink: GhostEvents,
        log_content: bool,
    ) -> LoopResult:
        spec = plan.ghost
        assert spec is not None
        own = offered_tool_schemas(spec)
        offer = offer_tools(spec.client_tools, spec.name, own, chat.body)
        for name, why in offer.skipped:
            sink.step(0, name, "", False, 0.0, why)
        ctx = tool_context(spec, log_content, TOOL_TIMEOUT_S)
        names = tuple(t["function"]["name"] for t in own)
        owner = (record.principal or "", spec.name)
        history = chat.body["messages"]
        if offer.client_names:
            history, _ = self.memory.splice(owner, history)
        prompt = system_prompt(spec, names, tuple(sorted(offer.client_names)))
        messages = [{"role": "system", "content": prompt}, *history]
        extra = {k: v for k, v in chat.body.items() if k in FORWARDED_FIELDS}
        calls = 0

        async def call_model(
            conversation: list[dict[str, Any]], tool_list: list[dict[str, Any]], live: Any
        ) -> Any:
            nonlocal calls
            calls += 1
            body = {**extra, "messages": conversation, **offer.fields(calls == 1)}
            return await model_turn(
                self.upstreams, self.catalog, plan.chain, body, record, live, spec.step_timeout_s
            )

        try:
            async with asyncio.timeout(spec.run_timeout_s):
                result = await run_ghost_loop(
                    spec,
                    messages,
                    offer.tools,
                    ctx,
                    call_model,
                    sink,
                    chat.stream,
                    offer.client_names,
                )
        except TimeoutError:
            raise SparksError(
                504, "upstream_timeout", f"ghost {spec.name} ran past run_timeout_s"
            ) from None
        record.usage = result.usage
        self._remember(owner, result)
        return result

    def _remember(self, owner: tuple[str, str], result: LoopResult) -> None:
        """Keep the steps behind a handoff, so the client's next turn can continue the task."""
        handoff = result.handoff
        if handoff is None:
            return
        ids = [call["id"] for call in handoff.calls]
        self.memory.remember(owner, ids, handoff.steps, handoff.message, handoff.results)

    async def _ask_classifier(
        self, messages: list[dict[str, str]], record: RequestRecord, local_only: bool
    ) -> str:
        """One short call to the classifier model; under `:local` only loopback targets, so the
        user's words never leave the machine (a non-local classifier raises → heuristic)."""
        model = self.config.classifier.model + (LOCAL_SUFFIX if local_only else "")
        route = self.catalog.table.resolve(model)
        chain = tuple(t for t in route.chain if t.backend)
        body = {"messages": messages, "max_tokens": 16, "temperature": 0}

        def make_body(target: Target) -> bytes:
            return jsonfast.dumps({**body, "model": target.upstream_model})

        served = await self.upstreams.open_chain(
            chain, "/chat/completions", make_body, record, stream=False
        )
        return turn_from_message(served.payload).content
