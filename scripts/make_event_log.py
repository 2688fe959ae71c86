"""Write a synthetic observer log of a given size, shaped like the real one (SPEC §8).

    python scripts/make_event_log.py --mb 50 --out /tmp/events.jsonl

Requests overlap in time (their events interleave, as in a busy daemon) and mix backend calls,
streams, alias fallbacks, ghost runs with tool steps, model listings, rejections and failures.
Lines are rendered with the observer's own serializer and key order, so `sparks activity` and
`sparks events` can be measured against it.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a script run from a checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from sparks.observe.event_log import format_ts  # noqa: E402
from sparks.observe.observer import LEVELS, _dumps  # noqa: E402

# backend/model → (price in, price out) per million tokens
MODELS = {
    "ollama/qwen3:8b": (0.0, 0.0),
    "openrouter/google/gemini-2.5-flash": (0.3, 2.5),
    "groq/llama-3.1-8b-instant": (0.05, 0.08),
}
PRINCIPALS = ("self", "self", "self", "cursor", "continue")
GHOSTS = ("coder", "scout")
TOOLS = (
    ("read_file", "path=sparks/server.py"),
    ("list_dir", "path=."),
    ("search", "pattern='def resolve'"),
    ("edit_file", "path=sparks/routing.py"),
    ("shell", "cmd='pytest -q tests/test_routing.py'"),
)
KINDS = (
    ("chat", 35),
    ("stream", 20),
    ("fallback", 8),
    ("ghost", 15),
    ("models", 5),
    ("unauthorized", 3),
    ("invalid", 3),
    ("rate_limited", 3),
    ("upstream_error", 4),
    ("timeout", 1),
    ("disconnect", 3),
)
BYTES_PER_REQUEST = 1200  # first guess at the mean; pacing adapts to the real figure

Event = tuple[datetime, int, str, dict[str, Any]]


class RequestFactory:
    """Builds one request's events (time, order, name, fields) from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serial = 0

    def events(self, start: datetime) -> list[Event]:
        rng = self.rng
        self.serial += 1
        rid = f"req_{rng.getrandbits(96):024x}"
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        out: list[Event] = []
        clock = [0.0]

        def add(event: str, delay_ms: float = 0.0, **fields: Any) -> None:
            clock[0] += delay_ms
            at = start + timedelta(milliseconds=clock[0])
            out.append((at, self.serial * 100 + len(out), event, {"request_id": rid, **fields}))

        model = rng.choice([*MODELS, "fast"])
        principal = rng.choice(PRINCIPALS)
        method, path = "POST", "/v1/chat/completions"
        if kind == "models":
            method, path, model = "GET", "/v1/models", None
        elif kind == "ghost":
            model = rng.choice(["sparks", "sparks/coder", "sparks/scout"])
        stream = kind in ("stream", "disconnect") or (kind == "ghost" and rng.random() < 0.5)
        received = {
            "method": method,
            "path": path,
            "principal": None if kind == "unauthorized" else principal,
            "model": model,
            "stream": stream if method == "POST" else None,
            "message_count": rng.randint(1, 30) if method == "POST" else None,
            "user_agent": rng.choice(["OpenAI/Python 1.54.0", "Continue/1.0", "curl/8.5"]),
        }
        add("request.received", **received)
        if kind == "models":
            self._completed(add, rng.uniform(0.3, 2), None, None, None, None)
        elif kind == "unauthorized":
            self._terminal(add, "request.rejected", 401, "invalid_api_key", "Invalid API key")
        elif kind == "rate_limited":
            self._terminal(add, "request.rejected", 429, "rate_limit_exceeded", "Rate limit")
        elif kind == "invalid":
            message = "'reasoning_effort' must be one of none, minimal, low, medium, high"
            self._terminal(add, "request.rejected", 400, "invalid_value", message)
        elif kind == "ghost":
            self._ghost(add, str(model), stream)
        else:
            self._backend(add, kind, str(model), stream)
        return out

    def _route(self, add: Any, model: str) -> tuple[str, list[str]]:
        if model == "fast":
            chain = ["groq/llama-3.1-8b-instant", "ollama/qwen3:8b"]
            add("route.resolved", 0.2, **self._route_fields(model, "alias", chain[0], chain))
            return chain[0], chain
        add("route.resolved", 0.2, **self._route_fields(model, "backend", model, None))
        return model, [model]

    @staticmethod
    def _route_fields(model: str, kind: str, target: str, chain: Any) -> dict[str, Any]:
        return {
            "model": model,
            "kind": kind,
            "target": target,
            "chain": chain,
            "ghost": None,
            "classifier": None,
        }

    def _attempt(self, add: Any, target: str, number: int, status: int | None, ms: float) -> None:
        backend, upstream_model = target.split("/", 1)
        error = None
        if status is None:
            error = f"cannot connect to {backend} at http://127.0.0.1:11434/v1: Connect call failed"
        elif status >= 400:
            error = f"HTTP {status}: upstream overloaded"
        add(
            "upstream.attempt",
            ms,
            backend=backend,
            upstream_model=upstream_model,
            attempt=number,
            status=status,
            latency_ms=round(ms, 2),
            error=error,
        )

    def _backend(self, add: Any, kind: str, model: str, stream: bool) -> None:
        rng = self.rng
        target, chain = self._route(add, model)
        served, fallback_from = target, None
        if kind == "fallback" and len(chain) > 1:
            self._attempt(add, chain[0], 1, rng.choice([503, 429, None]), rng.uniform(5, 300))
            served, fallback_from = chain[1], chain[0]
        if kind in ("upstream_error", "timeout"):
            for number, entry in enumerate(chain, start=1):
                self._attempt(add, entry, number, 502 if kind == "upstream_error" else None, 40)
            code = "upstream_error" if kind == "upstream_error" else "upstream_timeout"
            status = 502 if kind == "upstream_error" else 504
            self._terminal(add, "request.failed", status, code, f"{chain[-1]}: HTTP 502")
            return
        ttfb = rng.lognormvariate(5.5, 0.6)
        self._attempt(add, served, len(chain) if fallback_from else 1, 200, ttfb)
        if kind == "disconnect":
            add("client.disconnected", rng.uniform(100, 3000), after_ms=round(ttfb + 500, 2))
            self._terminal(add, "request.failed", 499, "client_disconnected", "client closed")
            return
        prompt, completion = rng.randint(50, 12000), rng.randint(5, 1500)
        price_in, price_out = MODELS.get(served, (0.0, 0.0))
        cost = round((prompt * price_in + completion * price_out) / 1e6, 8)
        generation = completion * rng.uniform(5, 25)
        ttft = round(ttfb + rng.uniform(1, 20), 2) if stream else None
        self._completed(add, generation, ttft, served, fallback_from, (prompt, completion), cost)

    def _ghost(self, add: Any, model: str, stream: bool) -> None:
        rng = self.rng
        ghost = rng.choice(GHOSTS) if model == "sparks" else model.split("/", 1)[1]
        classifier = None
        if model == "sparks":
            latency = round(rng.uniform(0.05, 1), 3)
            classifier = {"method": "keyword", "latency_ms": latency, "note": None}
        add(
            "route.resolved",
            classifier["latency_ms"] if classifier else 0.2,
            model=model,
            kind="classify" if classifier else "ghost",
            target=f"sparks/{ghost}",
            chain=["ollama/qwen3:8b"],
            ghost=ghost,
            classifier=classifier,
        )
        prompt = completion = 0
        for step in range(1, rng.randint(1, 6) + 1):
            self._attempt(add, "ollama/qwen3:8b", 1, 200, rng.lognormvariate(6.5, 0.5))
            prompt += rng.randint(800, 6000)
            completion += rng.randint(20, 300)
            tool, summary = rng.choice(TOOLS)
            duration = rng.lognormvariate(2, 1.5)
            ok = rng.random() > 0.08
            add(
                "ghost.step",
                duration,
                ghost=ghost,
                step=step,
                tool=tool,
                args_summary=summary,
                ok=ok,
                duration_ms=round(duration, 2),
            )
        self._attempt(add, "ollama/qwen3:8b", 1, 200, rng.lognormvariate(6.5, 0.5))
        ttft = round(rng.uniform(5, 50), 2) if stream else None
        self._completed(add, 30, ttft, f"sparks/{ghost}", None, (prompt, completion), 0.0)

    @staticmethod
    def _terminal(add: Any, event: str, status: int, code: str, error: str) -> None:
        add(
            event,
            1.0,
            status=status,
            code=code,
            error=error,
            latency_ms=0.0,
            served_model=None,
            fallback_from=None,
        )

    @staticmethod
    def _completed(
        add: Any,
        after_ms: float,
        ttft: float | None,
        served: str | None,
        fallback_from: str | None,
        tokens: tuple[int, int] | None,
        cost: float | None = None,
    ) -> None:
        usage = None
        if tokens:
            usage = {
                "prompt_tokens": tokens[0],
                "completion_tokens": tokens[1],
                "total_tokens": sum(tokens),
            }
        add(
            "request.completed",
            after_ms,
            status=200,
            latency_ms=0.0,
            ttft_ms=ttft,
            served_model=served,
            fallback_from=fallback_from,
            usage=usage,
            cost=cost,
        )


def render(at: datetime, event: str, fields: dict[str, Any], start: datetime | None) -> str:
    """One line in the observer's key order: the fields, then event, ts, level."""
    if start is not None and "latency_ms" in fields and event.startswith("request."):
        fields["latency_ms"] = round((at - start).total_seconds() * 1000, 2)
    record = {**fields, "event": event, "ts": format_ts(at), "level": LEVELS.get(event, "info")}
    return _dumps(record) + "\n"


def generate_lines(target_bytes: int, seed: int, hours: float, end: datetime) -> Iterator[str]:
    """Lines in time order until about `target_bytes` are out (open requests are finished)."""
    rng = random.Random(seed)
    factory = RequestFactory(rng)
    span_s = hours * 3600
    clock = end - timedelta(seconds=span_s)
    requests = 0
    pending: list[Event] = []
    starts: dict[str, datetime] = {}
    written = 0
    at = clock
    server = {"bind": "127.0.0.1:8787", "version": "0.1.0", "config_path": "built-in defaults"}
    first = render(clock, "server.started", {**server, "models": ["sparks", *MODELS]}, None)
    written += len(first)
    yield first
    while written < target_bytes:
        # pace arrivals so the log ends near `end`: the time left over the requests still to come
        per_request = written / requests if requests else BYTES_PER_REQUEST
        requests_left = max(1.0, (target_bytes - written) / per_request)
        mean_gap_s = max(0.001, (end - clock).total_seconds() / requests_left)
        clock += timedelta(seconds=rng.expovariate(1 / mean_gap_s))
        requests += 1
        for item in factory.events(clock):
            heapq.heappush(pending, item)
        while pending and (pending[0][0] <= clock or written >= target_bytes):
            at, _, event, fields = heapq.heappop(pending)
            rid = fields["request_id"]
            starts.setdefault(rid, at)
            line = render(at, event, fields, starts[rid])
            if event in ("request.completed", "request.failed", "request.rejected"):
                del starts[rid]
            written += len(line)
            yield line
    yield render(max(clock, at) + timedelta(seconds=1), "server.stopped", server, None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size in MiB (default 50)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (overwritten)")
    parser.add_argument("--hours", type=float, default=20.0, help="time span, ending now")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    target = int(args.mb * 1024 * 1024)
    with args.out.open("w", encoding="utf-8") as out:
        end = datetime.now(UTC) - timedelta(minutes=2)  # open requests finish after `end`
        out.writelines(generate_lines(target, args.seed, args.hours, end))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024 / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
