"""A ghost's tool-calling loop (SPEC §5.1). The model call and the output sinks are injected,
so this module neither speaks HTTP nor knows which backend answers.

With merged client tools, a turn that calls one of the client's tools ends the loop: the ghost's
own calls of that turn still run, and the client's calls are handed back with fresh ids (the
continuity cache's keys), together with the steps the client never saw."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sparks.ghosts.definitions import GhostSpec
from sparks.ghosts.tools import ToolContext, ToolResult, args_summary, run_tool

LOOP_GUARD_REPEATS = 3  # the same call (tool + arguments) this many times ends the loop
TEXT_SEPARATOR = "\n\n"  # between the texts of successive model turns, streamed or not


@dataclass
class Turn:
    """One model answer, assembled from a stream or taken whole."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None


class LoopSink(Protocol):
    """Where the loop reports as it goes (a stream to the client, or a buffer)."""

    async def progress(self, line: str) -> None: ...

    async def content(self, text: str) -> None: ...

    async def reasoning(self, text: str) -> None: ...

    def step(
        self, step: int, tool: str, summary: str, ok: bool, duration_ms: float, note: str = ""
    ) -> None: ...


# (messages, tools, sink or None) → Turn; with a sink, content/reasoning deltas go to it live
ModelCall = Callable[[list[dict[str, Any]], list[dict[str, Any]], LoopSink | None], Awaitable[Turn]]


@dataclass
class Handoff:
    """A turn that ended with calls of the client's tools."""

    calls: list[dict[str, Any]]  # what the client receives, with fresh ids
    steps: list[dict[str, Any]]  # the ghost's own assistant/tool messages before that turn
    message: dict[str, Any]  # the model's assistant message of that turn (all its calls)
    results: list[dict[str, Any]]  # results of the ghost's own calls in that turn


@dataclass
class LoopResult:
    content: str
    finish_reason: str
    usage: dict[str, int]
    steps: int
    progress: list[str]
    handoff: Handoff | None = None


class _TurnText:
    """Passes one turn's live output on; its text opens with TEXT_SEPARATOR when an earlier turn
    already wrote text, so streamed text equals the joined text of the whole answer."""

    def __init__(self, sink: LoopSink, after_text: bool) -> None:
        self.sink = sink
        self.pending = TEXT_SEPARATOR if after_text else ""

    async def progress(self, line: str) -> None:
        await self.sink.progress(line)

    async def reasoning(self, text: str) -> None:
        await self.sink.reasoning(text)

    async def content(self, text: str) -> None:
        if text:
            text, self.pending = self.pending + text, ""
            await self.sink.content(text)

    def step(
        self, step: int, tool: str, summary: str, ok: bool, duration_ms: float, note: str = ""
    ) -> None:
        self.sink.step(step, tool, summary, ok, duration_ms, note)


def _add_usage(total: dict[str, int], usage: dict[str, Any] | None) -> None:
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = (usage or {}).get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def _call_key(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    raw = function.get("arguments") or ""
    try:
        normalized = json.dumps(json.loads(raw), sort_keys=True)
    except (ValueError, TypeError):
        normalized = str(raw)
    return f"{function.get('name')}:{normalized}"


def _parsed_args(call: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads((call.get("function") or {}).get("arguments") or "{}")
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


async def run_ghost_loop(
    spec: GhostSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    ctx: ToolContext,
    call_model: ModelCall,
    sink: LoopSink,
    stream: bool,
    client_tools: frozenset[str] = frozenset(),
) -> LoopResult:
    """Alternate model turns and local tool calls until an answer, a call of one of
    `client_tools` (handed back), max_steps or the loop guard."""
    conversation = list(messages)
    usage: dict[str, int] = {}
    progress: list[str] = []
    texts: list[str] = []
    seen: Counter[str] = Counter()
    steps = 0

    async def note(line: str) -> None:
        progress.append(line)
        await sink.progress(line)

    def text() -> str:
        return TEXT_SEPARATOR.join(texts)

    while True:
        steps += 1
        live = _TurnText(sink, bool(texts)) if stream else None
        turn = await call_model(conversation, tools, live)
        _add_usage(usage, turn.usage)
        if turn.content:
            texts.append(turn.content)
        if not turn.tool_calls:
            return LoopResult(text(), turn.finish_reason or "stop", usage, steps, progress)
        if any(_name(c) in client_tools for c in turn.tool_calls):
            handoff = await _hand_off(spec, ctx, turn, steps, sink, note, client_tools)
            handoff.steps = conversation[len(messages) :]
            return LoopResult(text(), "tool_calls", usage, steps, progress, handoff)
        if steps >= spec.max_steps:
            stop = (
                f"{TEXT_SEPARATOR}[sparks: stopped after {spec.max_steps} steps (max_steps) while "
                "the model still wanted to call tools; ask again to continue.]"
            )
            await sink.content(stop)
            return LoopResult(text() + stop, "length", usage, steps, progress)
        keys = [_call_key(c) for c in turn.tool_calls]
        seen.update(keys)
        if any(seen[k] >= LOOP_GUARD_REPEATS for k in keys):
            repeated = next(k for k in keys if seen[k] >= LOOP_GUARD_REPEATS).split(":", 1)[0]
            stop = (
                f"{TEXT_SEPARATOR}[sparks: stopped: the model called {repeated} with the same "
                f"arguments {LOOP_GUARD_REPEATS} times (loop guard).]"
            )
            await sink.content(stop)
            return LoopResult(text() + stop, "stop", usage, steps, progress)
        conversation.append(
            {"role": "assistant", "content": turn.content or None, "tool_calls": turn.tool_calls}
        )
        for call in turn.tool_calls:
            result = await _run_call(spec, ctx, call, steps, sink, note)
            conversation.append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": result.output}
            )


def _name(call: dict[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


async def _hand_off(
    spec: GhostSpec,
    ctx: ToolContext,
    turn: Turn,
    step: int,
    sink: LoopSink,
    note: Callable[[str], Awaitable[None]],
    client_tools: frozenset[str],
) -> Handoff:
    """Run the turn's ghost calls; give the client's calls fresh ids and hand them back."""
    calls: list[dict[str, Any]] = []
    for call in turn.tool_calls:
        if _name(call) in client_tools:
            call = {**call, "id": new_call_id(), "type": "function"}
        calls.append(call)
    message = {"role": "assistant", "content": turn.content or None, "tool_calls": calls}
    results = []
    client_calls = []
    for call in calls:
        name = _name(call)
        if name not in client_tools:
            result = await _run_call(spec, ctx, call, step, sink, note)
            results.append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": result.output}
            )
            continue
        client_calls.append(call)
        summary = args_summary(name, _parsed_args(call), ctx.log_content)
        await note(f"→ {name} {summary}".rstrip() + " (the client's tool: handed back)")
        sink.step(step, name, summary, True, 0.0, "client tool: handed back to the client")
    return Handoff(client_calls, [], message, results)


async def _run_call(
    spec: GhostSpec,
    ctx: ToolContext,
    call: dict[str, Any],
    step: int,
    sink: LoopSink,
    note: Callable[[str], Awaitable[None]],
) -> ToolResult:
    function = call.get("function") or {}
    name = str(function.get("name") or "")
    summary = args_summary(name, _parsed_args(call), ctx.log_content)
    await note(f"→ {name} {summary}".rstrip())
    started = time.perf_counter()
    result = await run_tool(ctx, name, str(function.get("arguments") or ""))
    duration = round((time.perf_counter() - started) * 1000, 2)
    await note(f"  {'✓' if result.ok else '✗'} {result.summary}")
    sink.step(step, name, summary, result.ok, duration)
    return result
