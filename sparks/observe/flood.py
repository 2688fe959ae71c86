"""The flood bound of SPEC §8: requests rejected before anyone was authenticated are logged one
by one only up to a few per second; past that they are counted and written as one summary
`request.rejected` line per interval, so a flood can neither fill the disk nor rotate real
history away."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sparks.limiter import TokenBucket

PER_SECOND = 1  # sustained individual lines (each is request.received + request.rejected)
BURST = 10
SUMMARY_INTERVAL_S = 10.0


class RejectionFlood:
    """Admits unauthenticated rejections to the log at a bounded rate; summarises the rest."""

    def __init__(
        self,
        emit: Callable[..., None],
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = SUMMARY_INTERVAL_S,
    ) -> None:
        self._emit = emit
        self._bucket = TokenBucket(PER_SECOND * 60, BURST, clock)
        self._interval_s = interval_s
        self._held: Counter[tuple[int, str]] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def admit(self, status: int, code: str) -> bool:
        """True: log this rejection as usual. False: it is counted for the next summary."""
        if self._bucket.try_acquire().allowed:
            return True
        self._held[(status, code)] += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False  # no loop (tests of the record alone): `flush` writes it
            self._timer = loop.call_later(self._interval_s, self.flush)
        return False

    def flush(self) -> None:
        """One summary line per (status, code) held since the last one."""
        self._timer = None
        held, self._held = self._held, Counter()
        for (status, code), count in sorted(held.items()):
            fields: dict[str, Any] = {
                "status": status,
                "code": code,
                "error": f"{count} more unauthenticated requests rejected (summarised)",
                "count": count,
                "interval_s": self._interval_s,
                "summary": True,
            }
            self._emit("request.rejected", **fields)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
