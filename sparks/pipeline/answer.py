"""What a backend or a ghost hands the responder: one interface for both.

An answer is exactly one of a whole JSON `payload`, a stream of SSE `events` (each a complete
`data: …\\n\\n` event, without the final `[DONE]`), or raw `body` bytes (audio, transcripts). A
producer records usage, cost and timings on the request's record as it goes; a stream that
fails raises `StreamBroken` or `SparksError` from its iterator and the responder ends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    served_model: str
    headers: dict[str, str] = field(default_factory=dict)  # X-Sparks-Route, fallback
    payload: Any = None
    events: AsyncIterator[bytes] | None = None
    body: AsyncIterator[bytes] | None = None
    content_type: str = "application/json"
    content: Any = None  # what `log_content = true` records as the answer
    native: bool = False  # a backend's own answer in the request's front API (SPEC §9)
    close: Callable[[], None] = lambda: None
