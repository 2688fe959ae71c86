"""Prometheus metrics (SPEC §10.2), fed by the observer's events and nothing else.

`RequestMetrics.observe` is an observer listener: it keeps what a request's terminal event does
not repeat (api, route kind, requested model, principal, streaming) in a bounded dict until that
terminal event. Values live in plain dicts updated on the event loop (an update costs a dict
lookup, not a lock); a collector in a per-app `CollectorRegistry` (never the process-global
default) turns them into Prometheus families when /metrics is scraped. Labels are bounded: no
request ids or raw client strings; a model id that is not in the catalog is counted as `other`,
an unknown tool name as `other`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Container, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sparks.config import DEFAULT_GHOST_TOOLS

# Seconds, from a cached answer (ms) to a long ghost run or a slow local model (minutes).
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
    300.0, 600.0, 1800.0,
)  # fmt: skip
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
STEP_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
APIS = frozenset(
    {
        "chat",
        "completions",
        "embeddings",
        "images.generations",
        "audio.speech",
        "audio.transcriptions",
        "responses",
        "messages",
    }
)
ROUTE_KINDS = frozenset({"backend", "alias", "ghost", "classify"})
TOOLS = frozenset(DEFAULT_GHOST_TOOLS)
TOKEN_KINDS = (("prompt", "prompt_tokens"), ("completion", "completion_tokens"))
NONE = "none"  # the fact does not apply (no model, not routed, not authenticated)
OTHER = "other"  # a value outside the bounded set
MAX_OPEN = 10_000  # requests between request.received and their terminal event


class _Family:
    """One metric: its label values → a number (counter, gauge) or bucket counts (histogram)."""

    def __init__(
        self, kind: str, name: str, doc: str, labels: tuple[str, ...], buckets: tuple = ()
    ) -> None:
        self.kind, self.name, self.doc, self.labels = kind, name, doc, labels
        self.buckets = buckets
        self.values: dict[tuple[str, ...], Any] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """A histogram sample: one count in its bucket (the last is +Inf), and the sum."""
        counts = self.values.get(labels)
        if counts is None:
            counts = self.values[labels] = [0] * (len(self.buckets) + 1) + [0.0]
        counts[bisect_left(self.buckets, value)] += 1
        counts[-1] += value

    def family(self) -> Metric:
        labels = list(self.labels)
        if self.kind == "histogram":
            histogram = HistogramMetricFamily(self.name, self.doc, labels=labels)
            bounds = [*(floatToGoString(b) for b in self.buckets), "+Inf"]
            for values, counts in self.values.items():
                cumulative, total = [], 0
                for bound, count in zip(bounds, counts, strict=False):
                    total += count
                    cumulative.append((bound, total))
                histogram.add_metric(list(values), cumulative, counts[-1])
            return histogram
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = cls(self.name, self.doc, labels=labels)
        for values, value in self.values.items():
            family.add_metric(list(values), value)
        return family


class _Collector(Collector):
    def __init__(self, families: list[_Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()


class _Open:
    """What a request's earlier events said, kept until its terminal event."""

    __slots__ = ("api", "model", "principal", "route", "streaming")

    def __init__(self) -> None:
        self.api = NONE
        self.route = NONE
        self.model = NONE
        self.principal = NONE
        self.streaming = False


class RequestMetrics:
    """The registry behind `GET /metrics` and the listener that keeps it current."""

    def __init__(self, known_models: Callable[[], Container[str]], version: str = "") -> None:
        self._known_models = known_models
        self._open: dict[str, _Open] = {}
        self.requests = _Family(
            "counter",
            "sparks_requests",
            "Requests by front, route kind, requested and served model, HTTP status and outcome "
            "(completed|rejected|failed: the terminal event).",
            ("api", "route", "model", "served_model", "status", "outcome"),
        )
        self.latency = _Family(
            "histogram",
            "sparks_request_duration_seconds",
            "Time from a request's arrival to its end (last byte relayed, for streams).",
            ("api", "route", "served_model"),
            LATENCY_BUCKETS,
        )
        self.ttft = _Family(
            "histogram",
            "sparks_time_to_first_token_seconds",
            "Streams and audio: time until the first chunk was sent to the client.",
            ("api", "route", "served_model"),
            TTFT_BUCKETS,
        )
        self.tokens = _Family(
            "counter",
            "sparks_tokens",
            "Tokens reported by upstream usage, by type (prompt|completion), model and client.",
            ("type", "served_model", "principal"),
        )
        self.cost = _Family(
            "counter",
            "sparks_cost",
            "Cost at the configured model_info prices, by model and client.",
            ("served_model", "principal"),
        )
        self.attempts = _Family(
            "counter",
            "sparks_upstream_attempts",
            "Upstream attempts by backend and outcome "
            "(ok|http_4xx|http_5xx|connect_error|timeout|invalid|skipped).",
            ("backend", "outcome"),
        )
        self.attempt_latency = _Family(
            "histogram",
            "sparks_upstream_attempt_duration_seconds",
            "Time of one upstream attempt: to the whole answer, or to the headers of a stream.",
            ("backend",),
            LATENCY_BUCKETS,
        )
        self.fallbacks = _Family(
            "counter",
            "sparks_fallbacks",
            "Requests served by a later chain entry than the first.",
            ("model", "fallback_from", "served_model"),
        )
        self.rate_limited = _Family(
            "counter",
            "sparks_rate_limited",
            "Requests refused by the rate limiter (429 rate_limit_exceeded).",
            ("principal",),
        )
        self.active_streams = _Family(
            "gauge",
            "sparks_active_streams",
            "Streaming requests (stream: true) received and not yet ended.",
            ("api",),
        )
        self.ghost_steps = _Family(
            "counter",
            "sparks_ghost_steps",
            "Ghost tool calls by ghost, tool and outcome (ok|error).",
            ("ghost", "tool", "outcome"),
        )
        self.ghost_step_duration = _Family(
            "histogram",
            "sparks_ghost_step_duration_seconds",
            "Time of one ghost tool call.",
            ("tool",),
            STEP_BUCKETS,
        )
        info = _Family("gauge", "sparks_build_info", "Sparks version (always 1).", ("version",))
        info.inc((version or "unknown",))
        self.registry = CollectorRegistry()
        self.registry.register(
            _Collector(
                [
                    self.requests,
                    self.latency,
                    self.ttft,
                    self.tokens,
                    self.cost,
                    self.attempts,
                    self.attempt_latency,
                    self.fallbacks,
                    self.rate_limited,
                    self.active_streams,
                    self.ghost_steps,
                    self.ghost_step_duration,
                    info,
                ]
            )
        )
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "request.received": self._received,
            "route.resolved": self._routed,
            "upstream.attempt": self._attempt,
            "ghost.step": self._step,
            "request.completed": self._terminal,
            "request.failed": self._terminal,
            "request.rejected": self._terminal,
        }

    def observe(self, event: dict[str, Any]) -> None:
        """The observer listener: one dict lookup for events that carry no metric."""
        handler = self._handlers.get(event["event"])
        if handler is not None:
            handler(event)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def model_label(self, model: Any) -> str:
        if not model:
            return NONE
        try:
            return model if model in self._known_models() else OTHER
        except TypeError:  # not hashable: not an id at all
            return OTHER

    def _state(self, request_id: Any) -> _Open | None:
        if request_id is None:
            return None
        state = self._open.get(request_id)
        if state is None:
            if len(self._open) >= MAX_OPEN:  # terminal events lost (a bug): drop the oldest
                self._forget(next(iter(self._open)))
            state = self._open[request_id] = _Open()
        return state

    def _forget(self, request_id: str) -> _Open | None:
        state = self._open.pop(request_id, None)
        if state is not None and state.streaming:
            self.active_streams.inc((state.api,), -1)
        return state

    def _received(self, event: dict[str, Any]) -> None:
        state = self._state(event.get("request_id"))
        if state is None:
            return
        api = event.get("api")
        state.api = NONE if api is None else api if api in APIS else OTHER
        state.model = self.model_label(event.get("model"))
        state.principal = event.get("principal") or NONE
        if event.get("stream") is True and not state.streaming:
            state.streaming = True
            self.active_streams.inc((state.api,))

    def _routed(self, event: dict[str, Any]) -> None:
        state = self._state(event.get("request_id"))
        if state is not None:
            kind = event.get("kind")
            state.route = kind if kind in ROUTE_KINDS else OTHER

    def _attempt(self, event: dict[str, Any]) -> None:
        backend = event.get("backend") or NONE  # a configured backend name: bounded
        self.attempts.inc((backend, attempt_outcome(event)))
        latency = event.get("latency_ms")
        if isinstance(latency, int | float) and not _skipped(event):
            self.attempt_latency.observe((backend,), latency / 1000)

    def _step(self, event: dict[str, Any]) -> None:
        tool = event.get("tool")
        tool = tool if tool in TOOLS else OTHER
        outcome = "ok" if event.get("ok") else "error"
        self.ghost_steps.inc((event.get("ghost") or NONE, tool, outcome))
        duration = event.get("duration_ms")
        if isinstance(duration, int | float):
            self.ghost_step_duration.observe((tool,), duration / 1000)

    def _terminal(self, event: dict[str, Any]) -> None:
        request_id = event.get("request_id")
        state = self._forget(request_id) if request_id is not None else None
        state = state or _Open()
        status = str(event.get("status"))
        served = self.model_label(event.get("served_model"))
        count = event.get("count") if event.get("summary") else 1  # flood summaries
        outcome = event["event"][8:]  # request.completed → completed
        self.requests.inc(
            (state.api, state.route, state.model, served, status, outcome), count or 1
        )
        if request_id is None:
            return
        timing = (state.api, state.route, served)
        latency = event.get("latency_ms")
        if isinstance(latency, int | float):
            self.latency.observe(timing, latency / 1000)
        ttft = event.get("ttft_ms")
        if isinstance(ttft, int | float):
            self.ttft.observe(timing, ttft / 1000)
        usage = event.get("usage")
        if usage.__class__ is dict:
            for kind, key in TOKEN_KINDS:
                tokens = usage.get(key)
                if tokens.__class__ is int and tokens > 0:
                    self.tokens.inc((kind, served, state.principal), tokens)
        cost = event.get("cost")
        if isinstance(cost, int | float) and cost > 0:
            self.cost.inc((served, state.principal), cost)
        fallback_from = event.get("fallback_from")
        if fallback_from:
            self.fallbacks.inc((state.model, self.model_label(fallback_from), served))
        if event.get("code") == "rate_limit_exceeded" and state.route == NONE:
            self.rate_limited.inc((state.principal,))  # not an upstream's 429 passed on


def _skipped(event: dict[str, Any]) -> bool:
    error = event.get("error")
    return isinstance(error, str) and error.startswith("skipped:")


def attempt_outcome(event: dict[str, Any]) -> str:
    """An `upstream.attempt` event's outcome, from its status and error text (SPEC §8)."""
    error = event.get("error")
    if error is None:
        return "ok"
    status = event.get("status")
    if isinstance(status, int) and status >= 400:
        return "http_4xx" if status < 500 else "http_5xx"
    if not isinstance(error, str):
        return "invalid"
    if error.startswith("skipped:"):
        return "skipped"
    if error.startswith("cannot connect"):
        return "connect_error"
    if error.startswith("no answer from"):
        return "timeout"
    return "invalid"
