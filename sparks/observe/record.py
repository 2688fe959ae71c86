"""One request's trail in the observer log: received → … → exactly one terminal event (SPEC §8)."""

from __future__ import annotations

import time
from typing import Any

from sparks.observe.observer import Observer

UNAUTHENTICATED_STATUSES = frozenset({401, 403})


class RequestRecord:
    """Collects a request's facts and writes its events; the terminal event is written once."""

    __slots__ = (
        "_received",
        "api",
        "cost",
        "fallback_from",
        "finished",
        "method",
        "observer",
        "path",
        "principal",
        "request_id",
        "served_model",
        "start",
        "tools_ms",
        "ttft_ms",
        "upstream_calls",
        "upstream_ms",
        "usage",
        "user_agent",
    )

    def __init__(
        self, observer: Observer, request_id: str, method: str, path: str, user_agent: str
    ) -> None:
        self.observer = observer
        self.request_id = request_id
        self.method = method
        self.path = path
        self.user_agent = user_agent
        self.start = time.perf_counter()
        self.principal: str | None = None
        self.finished = False
        self._received = False
        self.served_model: str | None = None
        self.fallback_from: str | None = None
        self.usage: dict[str, Any] | None = None
        self.cost: float | None = None
        self.ttft_ms: float | None = None
        self.upstream_ms = 0.0
        self.tools_ms: float | None = None  # a ghost's local tool time; None for backends
        self.upstream_calls = 0  # upstream requests made (a ghost makes one per step)
        self.api: str | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 2)

    def emit(self, event: str, **fields: Any) -> None:
        self.observer.emit(event, request_id=self.request_id, **fields)

    def received(
        self,
        model: str | None = None,
        stream: bool | None = None,
        message_count: int | None = None,
        messages: Any = None,
        api: str | None = None,
        **extra: Any,
    ) -> None:
        """`request.received`, once; `extra` adds front-specific facts (e.g. dropped tools)."""
        if self._received:
            return
        self._received = True
        self.api = api
        fields: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "api": api,
            "principal": self.principal,
            "model": model,
            "stream": stream,
            "message_count": message_count,
            "user_agent": self.user_agent,
        }
        fields.update(extra)
        if messages is not None and self.observer.log_content:
            fields["messages"] = messages
        self.emit("request.received", **fields)

    def mark_first_byte(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = self.elapsed_ms()

    def complete(self, status: int, content: Any = None) -> None:
        if self.finished:
            return
        self.received()
        self.finished = True
        fields = self._outcome(status)
        fields.update(ttft_ms=self.ttft_ms, usage=self.usage, cost=self.cost)
        if content is not None and self.observer.log_content:
            fields["content"] = content
        self.emit("request.completed", **fields)

    def _outcome(self, status: int) -> dict[str, Any]:
        return {
            "status": status,
            "latency_ms": self.elapsed_ms(),
            "served_model": self.served_model,
            "fallback_from": self.fallback_from,
            "upstream_calls": self.upstream_calls,
        }

    def fail(self, status: int, code: str, error: str) -> None:
        """A request that Sparks or its upstream could not serve (5xx, mid-stream, disconnect)."""
        self._terminal("request.failed", status, code, error)

    def reject(self, status: int, code: str, error: str) -> None:
        """A request refused for what it was (4xx: input, auth, limits). Refusals before anyone
        was authenticated pass the flood bound (SPEC §8) and may be only counted."""
        if (
            self.principal is None
            and status in UNAUTHENTICATED_STATUSES
            and not self.finished
            and not self._received
            and not self.observer.flood.admit(status, code)
        ):
            self.finished = True
            return
        self._terminal("request.rejected", status, code, error)

    def _terminal(self, event: str, status: int, code: str, error: str) -> None:
        if self.finished:
            return
        self.received()
        self.finished = True
        fields = self._outcome(status)
        fields.update(code=code, error=error)
        if self.usage is not None or self.cost is not None or self.ttft_ms is not None:
            # a stream that broke after tokens were spent still accounts for them
            fields.update(usage=self.usage, cost=self.cost, ttft_ms=self.ttft_ms)
        self.emit(event, **fields)
