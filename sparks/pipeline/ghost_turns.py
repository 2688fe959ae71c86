"""One model turn of a ghost: a call through the upstream chain, read whole or streamed through
the one SSE reader. A broken or cut stream is a failure (502), never a shorter turn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sparks import jsonfast
from sparks.backends.catalog import Catalog
from sparks.backends.reasoning import DeltaNormalizer, normalize_message
from sparks.backends.upstream import Upstreams
from sparks.backends.watchdog import IdleWatchdog
from sparks.errors import SparksError
from sparks.ghosts.loop import LoopSink, Turn
from sparks.observe.record import RequestRecord
from sparks.pipeline.sse import StreamBroken, data_payloads, parse_chunk
from sparks.routing import Target

SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


def _finish(value: Any) -> str | None:
    """The upstream's finish_reason if it is one a client knows; anything odd counts as none."""
    return value if isinstance(value, str) and value in FINISH_REASONS else None


async def model_turn(
    upstreams: Upstreams,
    catalog: Catalog,
    chain: tuple[Target, ...],
    body: dict[str, Any],
    record: RequestRecord,
    live: LoopSink | None,
    timeout_s: float,
) -> Turn:
    """Ask the ghost's model once; with `live`, content and reasoning deltas go to it as they
    arrive. The whole call counts as upstream time; its cost is added to the request's."""
    stream = live is not None

    def make_body(target: Target) -> bytes:
        payload = {**body, "model": target.upstream_model}
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return jsonfast.dumps(payload)

    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            served = await upstreams.open_chain(
                chain, "/chat/completions", make_body, record, stream=stream
            )
            try:
                if live is None:
                    turn = turn_from_message(served.payload)
                else:
                    assert served.response is not None
                    chunks = served.response.content.iter_any()
                    turn = await turn_from_stream(chunks, live, served.watchdog())
            finally:
                served.close()
    except TimeoutError:
        raise SparksError(
            504, "upstream_timeout", f"a ghost model step took longer than {timeout_s:g}s"
        ) from None
    finally:
        record.upstream_ms += round((time.perf_counter() - started) * 1000, 2)
    step_cost = catalog.cost(served.target, turn.usage)
    if step_cost is not None:
        record.cost = round((record.cost or 0.0) + step_cost, 8)
    return turn


def turn_from_message(payload: Any) -> Turn:
    try:
        choice = payload["choices"][0]
        message = choice["message"]
        normalize_message(message)
        usage = payload.get("usage")
        return Turn(
            content=_text(message.get("content")),
            reasoning=_text(message.get("reasoning_content") or message.get("reasoning")),
            tool_calls=[_call(c) for c in message.get("tool_calls") or []],
            finish_reason=_finish(choice.get("finish_reason")),
            usage=usage if isinstance(usage, dict) else None,
        )
    except SHAPE_ERRORS:
        raise SparksError(
            502, "upstream_error", "ghost model answered without a usable message"
        ) from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("text field is not a string")
    return value


def _call(call: Any) -> dict[str, Any]:
    function = call["function"]
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {
            "name": _text(function.get("name")),
            "arguments": _text(function.get("arguments")),
        },
    }


async def turn_from_stream(
    chunks: Any, live: LoopSink, watchdog: IdleWatchdog | None = None
) -> Turn:
    """Assemble a streamed model turn, passing content and reasoning deltas through `live`."""
    turn = Turn()
    calls: dict[int, dict[str, Any]] = {}
    normalizer = DeltaNormalizer()
    try:
        async for payload in data_payloads(chunks, watchdog=watchdog):
            chunk = parse_chunk(payload)
            normalizer.normalize_chunk(chunk)
            if chunk.get("usage"):
                turn.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                await _take_delta(turn, calls, choice, live)
    except StreamBroken as exc:
        raise SparksError(502, "upstream_error", f"ghost model stream broke: {exc}") from None
    except SHAPE_ERRORS as exc:
        raise SparksError(
            502, "upstream_error", f"ghost model stream had an unexpected shape ({exc})"
        ) from None
    for reasoning, content in normalizer.flush().values():
        turn.reasoning += reasoning
        turn.content += content
        await live.reasoning(reasoning)
        await live.content(content)
    turn.tool_calls = [calls[i] for i in sorted(calls)]
    return turn


async def _take_delta(
    turn: Turn, calls: dict[int, dict[str, Any]], choice: dict[str, Any], live: LoopSink
) -> None:
    delta = choice.get("delta") or {}
    if _finish(choice.get("finish_reason")):
        turn.finish_reason = choice["finish_reason"]
    reasoning = _text(delta.get("reasoning_content") or delta.get("reasoning"))
    if reasoning:
        turn.reasoning += reasoning
        await live.reasoning(reasoning)
    content = _text(delta.get("content"))
    if content:
        turn.content += content
        await live.content(content)
    for part in delta.get("tool_calls") or []:
        entry = calls.setdefault(
            int(part.get("index", 0)),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        entry["id"] = str(part.get("id") or entry["id"])
        function = part.get("function") or {}
        entry["function"]["name"] += _text(function.get("name"))
        entry["function"]["arguments"] += _text(function.get("arguments"))
