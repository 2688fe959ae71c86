"""A ghost's tool-calling loop (SPEC §5.1). The model call and the output sinks are injected,
so this module neither speaks HTTP nor knows which backend answers."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sparks.ghosts.definitions import GhostSpec
from sparks.ghosts.tools import ToolContext, ToolResult, args_summary, run_tool

LOOP_GUARD_REPEATS = 3  # the same call (tool + arguments) this many times ends the loop


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

    def step(self, step: int, tool: str, summary: str, ok: bool, duration_ms: float) -> None: ...


# (messages, tools, sink or None) → Turn; with a sink, content/reasoning deltas go to it live
ModelCall = Callable[[list[dict[str, Any]], list[dict[str, Any]], LoopSink | None], Awaitable[Turn]]


@dataclass
class LoopResult:
    content: str
    finish_reason: str
    usage: dict[str, int]
    steps: int
    progress: list[str]


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


async def run_ghost_loop(
    spec: GhostSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    ctx: ToolContext,
    call_model: ModelCall,
    sink: LoopSink,
    stream: bool,
) -> LoopResult:
    """Alternate model turns and local tool calls until an answer, max_steps or the guard."""
    conversation = list(messages)
    usage: dict[str, int] = {}
    progress: list[str] = []
    seen: Counter[str] = Counter()
    steps = 0

    async def note(line: str) -> None:
        progress.append(line)
        await sink.progress(line)

    while True:
        steps += 1
        turn = await call_model(conversation, tools, sink if stream else None)
        _add_usage(usage, turn.usage)
        if not turn.tool_calls:
            if not stream and turn.content:
                await sink.content(turn.content)
            return LoopResult(turn.content, turn.finish_reason or "stop", usage, steps, progress)
        if steps >= spec.max_steps:
            text = (
                f"\n\n[sparks: stopped after {spec.max_steps} steps (max_steps) while the model "
                "still wanted to call tools; ask again to continue.]"
            )
            await sink.content(text)
            return LoopResult(turn.content + text, "length", usage, steps, progress)
        keys = [_call_key(c) for c in turn.tool_calls]
        seen.update(keys)
        if any(seen[k] >= LOOP_GUARD_REPEATS for k in keys):
            repeated = next(k for k in keys if seen[k] >= LOOP_GUARD_REPEATS).split(":", 1)[0]
            text = (
                f"\n\n[sparks: stopped: the model called {repeated} with the same arguments "
                f"{LOOP_GUARD_REPEATS} times (loop guard).]"
            )
            await sink.content(text)
            return LoopResult(turn.content + text, "stop", usage, steps, progress)
        conversation.append(
            {"role": "assistant", "content": turn.content or None, "tool_calls": turn.tool_calls}
        )
        for call in turn.tool_calls:
            result = await _run_call(spec, ctx, call, steps, sink, note)
            conversation.append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": result.output}
            )


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
