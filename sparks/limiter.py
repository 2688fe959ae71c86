"""The in-memory token bucket of SPEC §6, pure and clock-injected so it is tested without a server."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int  # whole seconds, >= 1 when refused, 0 when allowed
    reset_s: float  # seconds until the bucket is full again


class TokenBucket:
    """Capacity `burst`, refilled continuously at `per_minute / 60` tokens per second, full at start."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.capacity = float(max(1, burst))
        self.rate = per_minute / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._stamp = now

    def try_acquire(self) -> Decision:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Decision(True, int(self._tokens), 0, self._seconds_to_full())
        wait = (1.0 - self._tokens) / self.rate if self.rate > 0 else math.inf
        retry = max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
        return Decision(False, 0, retry, self._seconds_to_full())

    def _seconds_to_full(self) -> float:
        if self.rate <= 0:
            return 0.0
        return (self.capacity - self._tokens) / self.rate


def format_reset(seconds: float) -> str:
    """Render a duration the way OpenAI's `x-ratelimit-reset-*` headers do: `17ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"
