"""How a front other than chat completions speaks (SPEC §9): the pipeline serves every request
in the chat shape and a Front translates the answer back, or, for a backend that speaks the
front's API natively (`api = "responses"` / `"anthropic"`), passes that backend's own answer
through with only `model` rewritten. Chat itself has no Front: its answer goes out as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from sparks.errors import SparksError

UsageSink = Callable[[dict[str, Any]], None]


class Front(Protocol):
    api: str  # the backend `api` value it speaks natively: "responses" | "anthropic"
    native_path: str  # that API's upstream path: "/responses" | "/messages"

    def native_body(self, upstream_model: str) -> bytes:
        """The client's own request for a native backend, with `model` rewritten."""
        ...

    def answer_json(self, chat_payload: dict[str, Any], served_model: str) -> Any:
        """A whole chat completion as this front's answer object."""
        ...

    def answer_events(
        self, chat_events: AsyncIterator[bytes], served_model: str
    ) -> AsyncIterator[bytes]:
        """Chat chunk events (complete `data: …` events, no `[DONE]`) as this front's events;
        StreamBroken and SparksError from `chat_events` propagate unchanged."""
        ...

    def native_json(self, payload: Any, served_model: str, note_usage: UsageSink) -> Any:
        """A native backend's whole answer, `model` set to the Sparks id; its token counts go
        to `note_usage` in the chat shape (prompt_tokens, completion_tokens, total_tokens)."""
        ...

    def native_events(
        self, payloads: AsyncIterator[bytes], served_model: str, note_usage: UsageSink
    ) -> AsyncIterator[bytes]:
        """A native backend's SSE `data:` payloads as events for the client, `model` set to
        the Sparks id. The payload iterator ends where the upstream stream ends (no `[DONE]`
        is required); raise StreamBroken when the stream lacks its own closing event."""
        ...

    def stream_error(self, error: SparksError) -> bytes:
        """The event that ends a stream which failed after it started."""
        ...

    def stream_end(self) -> bytes:
        """What closes a whole stream after its last event (b"" when the events already did)."""
        ...

    def error_body(self, error: SparksError, include_trace: bool) -> bytes:
        """A JSON error response body in this front's shape (before any byte was sent)."""
        ...
