"""An idle limit for an open upstream body that costs one timer per stream, not one per read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class IdleWatchdog:
    """One timer per upstream stream instead of aiohttp's `sock_read` timer re-armed on every
    read: it wakes when the stream may have been idle for `timeout_s`, and closes the response
    when it really was, so the pending read fails and the reader reports a stall."""

    __slots__ = ("_close", "_handle", "_loop", "fired", "last", "timeout_s")

    def __init__(self, timeout_s: float, close: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._close = close
        self.timeout_s = timeout_s
        self.last = self._loop.time()
        self.fired = False
        self._handle = self._loop.call_at(self.last + timeout_s, self._check)

    def touch(self) -> None:
        self.last = self._loop.time()

    def _check(self) -> None:
        due = self.last + self.timeout_s
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self.fired = True
        self._close()

    def cancel(self) -> None:
        self._handle.cancel()
