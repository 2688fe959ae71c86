"""OpenTelemetry traces over OTLP/HTTP (SPEC §10.3), built from the observer's events.

`RequestTraces.observe` is an observer listener. A request's earlier events are kept in a bounded
dict keyed by request id; its terminal event turns them into one trace: a SERVER span for the
request with a CLIENT span per upstream attempt and an INTERNAL span per ghost step, with their
real start and end times (each event carries its own duration), and GenAI semantic-convention
attributes. Ended spans go to the SDK's BatchSpanProcessor, which exports from its own thread:
the request path only appends to a bounded queue, so a slow or unreachable collector can delay
or drop traces but never a request. Messages and answers are exported only with
`log_content = true`. `opentelemetry-sdk` is imported only when an endpoint is configured (the
optional `otel` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sparks.config import Config
from sparks.errors import StartupError
from sparks.observe.metrics import attempt_outcome

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

TERMINAL = frozenset({"request.completed", "request.failed", "request.rejected"})
MAX_OPEN = 10_000  # requests with events but no terminal event yet
MAX_CHILDREN = 512  # spans kept per request (a ghost run's attempts and steps)
OPERATIONS = {  # request.received api → gen_ai.operation.name
    "chat": "chat",
    "responses": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "images.generations": "generate_content",
    "audio.speech": "generate_content",
    "audio.transcriptions": "generate_content",
}
SYSTEMS = {"chat": "openai", "responses": "openai", "anthropic": "anthropic"}  # backend api →


class OtelMissing(StartupError):
    """`[observer.otlp] endpoint` is set but the `otel` extra is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "observer.otlp.endpoint is set but OpenTelemetry is not installed: "
            "pip install 'sparks[otel]'",
            2,
        )


def check_installed() -> None:
    """Raise OtelMissing unless the `otel` extra can be imported (checked before starting)."""
    import importlib.util

    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise OtelMissing()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector base URL (`http://host:4318` → `…/v1/traces`)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class _Open:
    __slots__ = ("children", "disconnected_ns", "received", "routed")

    def __init__(self) -> None:
        self.received: dict[str, Any] | None = None
        self.routed: dict[str, Any] | None = None
        self.children: list[tuple[dict[str, Any], int]] = []  # (event, its end in ns)
        self.disconnected_ns: int | None = None


class RequestTraces:
    """Turns each request's events into spans and hands them to a background exporter."""

    def __init__(self, config: Config, provider: TracerProvider, version: str = "") -> None:
        from opentelemetry import trace

        self._trace = trace
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("sparks", version)
        self.log_content = config.observer.log_content
        self.timeout_s = config.observer.otlp.timeout_s
        self._backends = {
            name: (SYSTEMS.get(b.api, "openai"), urlsplit(b.base_url))
            for name, b in config.backends.items()
        }
        self._open: dict[str, _Open] = {}

    @classmethod
    def start(cls, config: Config, version: str = "") -> RequestTraces:
        """A tracer provider with a batch exporter to `[observer.otlp] endpoint`."""
        otlp = config.observer.otlp
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise OtelMissing() from exc
        resource = Resource.create(
            {"service.name": otlp.service_name, "service.version": version or "unknown"}
        )
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=traces_url(otlp.endpoint), timeout=otlp.timeout_s)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(config, provider, version)

    def observe(self, event: dict[str, Any]) -> None:
        """The observer listener."""
        request_id = event.get("request_id")
        if request_id is None:  # server.started/stopped, flood summaries
            return
        name = event["event"]
        if name in TERMINAL:
            state = self._open.pop(request_id, None)
            self._finish(request_id, state or _Open(), event)
            return
        state = self._open.get(request_id)
        if state is None:
            if len(self._open) >= MAX_OPEN:
                self._open.pop(next(iter(self._open)))
            state = self._open[request_id] = _Open()
        if name == "request.received":
            state.received = event
        elif name == "route.resolved":
            state.routed = event
        elif name in ("upstream.attempt", "ghost.step"):
            if len(state.children) < MAX_CHILDREN:
                state.children.append((event, time.time_ns()))
        elif name == "client.disconnected":
            state.disconnected_ns = time.time_ns()

    def _finish(self, request_id: str, state: _Open, end: dict[str, Any]) -> None:
        trace = self._trace
        end_ns = time.time_ns()
        start_ns = end_ns - _ns(end.get("latency_ms"))
        for child, child_end_ns in state.children:  # rounded durations must not put a child
            duration = child.get("latency_ms", child.get("duration_ms"))  # before its parent
            start_ns = min(start_ns, child_end_ns - _ns(duration))
        received = state.received or {}
        attributes = self._request_attributes(request_id, received, state.routed or {}, end)
        name = _span_name(attributes, received)
        span = self.tracer.start_span(
            name, kind=trace.SpanKind.SERVER, attributes=attributes, start_time=start_ns
        )
        if end["event"] == "request.failed":
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(end.get("error") or "")))
        if state.disconnected_ns is not None:
            span.add_event("client.disconnected", timestamp=state.disconnected_ns)
        parent = trace.set_span_in_context(span)
        ghost = (state.routed or {}).get("ghost")
        operation = "chat" if ghost else OPERATIONS.get(received.get("api") or "", "chat")
        for child, child_end_ns in state.children:
            if child["event"] == "upstream.attempt":
                self._attempt_span(parent, child, child_end_ns, operation)
            else:
                self._step_span(parent, child, child_end_ns, ghost)
        span.end(end_time=max(end_ns, start_ns))

    def _request_attributes(
        self, request_id: str, received: dict[str, Any], routed: dict[str, Any], end: dict[str, Any]
    ) -> dict[str, Any]:
        api = received.get("api")
        served = end.get("served_model")
        attributes: dict[str, Any] = {
            "http.request.method": received.get("method"),
            "url.path": received.get("path"),
            "http.response.status_code": end.get("status"),
            "user_agent.original": received.get("user_agent") or None,
            "sparks.request_id": request_id,
            "sparks.api": api,
            "sparks.principal": received.get("principal"),
            "sparks.stream": received.get("stream"),
            "sparks.route.kind": routed.get("kind"),
            "sparks.route.target": routed.get("target"),
            "sparks.fallback_from": end.get("fallback_from"),
            "sparks.upstream_calls": end.get("upstream_calls"),
            "sparks.ttft_ms": end.get("ttft_ms"),
            "sparks.cost": end.get("cost"),
        }
        operation = OPERATIONS.get(api or "")
        if operation is not None:
            system = self._system(served)
            attributes.update(
                {
                    "gen_ai.operation.name": operation,
                    "gen_ai.system": system,
                    "gen_ai.provider.name": system,
                    "gen_ai.request.model": received.get("model"),
                    "gen_ai.response.model": served,
                }
            )
        if routed.get("ghost"):
            attributes["gen_ai.agent.name"] = routed["ghost"]
        classifier = routed.get("classifier")
        if isinstance(classifier, dict):
            attributes["sparks.classifier.method"] = classifier.get("method")
        usage = end.get("usage")
        if isinstance(usage, dict):
            attributes["gen_ai.usage.input_tokens"] = usage.get("prompt_tokens")
            attributes["gen_ai.usage.output_tokens"] = usage.get("completion_tokens")
        if end["event"] != "request.completed":
            attributes["error.type"] = end.get("code")
            attributes["sparks.error"] = end.get("error")
        if self.log_content:
            if received.get("messages") is not None:
                attributes["gen_ai.input.messages"] = _json(received["messages"])
            if end.get("content") is not None:
                attributes["gen_ai.output.messages"] = _json(end["content"])
        return _clean(attributes)

    def _system(self, served: Any) -> str:
        backend = served.split("/", 1)[0] if isinstance(served, str) else None
        found = self._backends.get(backend or "")
        return found[0] if found else "sparks"

    def _attempt_span(
        self, parent: Any, event: dict[str, Any], end_ns: int, operation: str
    ) -> None:
        trace = self._trace
        backend = event.get("backend") or ""
        system, url = self._backends.get(backend, ("openai", None))
        model = event.get("upstream_model")
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": system,
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "server.address": url.hostname if url else None,
            "server.port": url.port if url else None,
            "http.response.status_code": event.get("status"),
            "sparks.backend": backend,
            "sparks.attempt": event.get("attempt"),
            "error.type": _attempt_error_type(event),
            "sparks.error": event.get("error"),
        }
        span = self.tracer.start_span(
            f"{operation} {model}" if model else operation,
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=_clean(attributes),
            start_time=end_ns - _ns(event.get("latency_ms")),
        )
        if event.get("error") is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(event["error"])))
        span.end(end_time=end_ns)

    def _step_span(self, parent: Any, event: dict[str, Any], end_ns: int, ghost: Any) -> None:
        trace = self._trace
        tool = event.get("tool") or "unknown"
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.agent.name": event.get("ghost") or ghost,
            "sparks.ghost.step": event.get("step"),
            "sparks.tool.ok": event.get("ok"),
        }
        if self.log_content:
            attributes["sparks.tool.args_summary"] = event.get("args_summary")
        span = self.tracer.start_span(
            f"execute_tool {tool}",
            context=parent,
            kind=trace.SpanKind.INTERNAL,
            attributes=_clean(attributes),
            start_time=end_ns - _ns(event.get("duration_ms")),
        )
        if not event.get("ok"):
            span.set_status(trace.Status(trace.StatusCode.ERROR, "tool call failed"))
        span.end(end_time=end_ns)

    async def aclose(self) -> None:
        """Flush and stop the exporter without blocking the loop, waiting at most about
        `timeout_s` (the exporter's thread may be talking to a hung collector)."""
        self._open.clear()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def shut_down() -> None:
            try:
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(_resolve, done)

        threading.Thread(target=shut_down, name="sparks-otlp-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), self.timeout_s + 1.0)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _span_name(attributes: dict[str, Any], received: dict[str, Any]) -> str:
    """`{operation} {model}` for model requests (GenAI conventions), else `{method} {path}`."""
    operation = attributes.get("gen_ai.operation.name")
    if operation:
        model = attributes.get("gen_ai.request.model")
        return f"{operation} {model}" if model else operation
    return f"{received.get('method') or 'HTTP'} {received.get('path') or ''}".strip()


def _attempt_error_type(event: dict[str, Any]) -> str | None:
    outcome = attempt_outcome(event)
    return None if outcome == "ok" else outcome


def _ns(ms: Any) -> int:
    return int(ms * 1_000_000) if isinstance(ms, int | float) and ms > 0 else 0


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes may not be None; nested values are sent as JSON text."""
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if not isinstance(value, str | bool | int | float):
            value = _json(value)
        clean[key] = value
    return clean
