"""The continuity cache of merged client tools (SPEC §5.1).

When a ghost hands tool calls to the client, its own steps of that turn (its tool calls and their
results) are not in the client's history. They are kept here, keyed by the ids of the calls the
client received, scoped to the caller's principal and the ghost, and spliced back in before the
matching assistant message when the client returns with its results. A miss (restart, eviction,
expiry) only means the model sees less context. Limits, all in memory:

* `MAX_ENTRIES` handoffs (least recently used evicted first),
* `MAX_ENTRY_BYTES` per handoff (older steps dropped first, a tool call with its results at a
  time; a handoff that does not fit even without steps is not kept),
* `MAX_TOTAL_BYTES` for all entries together,
* `TTL_S` after the handoff was made or last spliced.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparks import jsonfast

MAX_ENTRIES = 512
MAX_ENTRY_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
TTL_S = 3600.0

Owner = tuple[str, str]  # (principal, ghost name)
Message = dict[str, Any]


@dataclass
class _Entry:
    owner: Owner
    call_ids: tuple[str, ...]
    blob: bytes  # JSON: [*steps, handoff assistant message, *ghost results of that turn]
    expires: float


def _groups(steps: Sequence[Message]) -> list[list[Message]]:
    """Split steps into an assistant message with the tool results that follow it."""
    groups: list[list[Message]] = []
    for message in steps:
        if message.get("role") == "assistant" or not groups:
            groups.append([])
        groups[-1].append(message)
    return groups


class GhostMemory:
    """Bounded map from returned tool-call ids to the ghost steps that led to them."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._by_call: dict[tuple[Owner, str], int] = {}
        self._total = 0
        self._serial = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._total

    def remember(
        self,
        owner: Owner,
        call_ids: Sequence[str],
        steps: Sequence[Message],
        handoff: Message,
        results: Sequence[Message],
    ) -> bool:
        """Keep one handoff; False when it cannot fit even without its earlier steps."""
        if not call_ids:
            return False
        groups = _groups(steps)
        while True:
            kept = [m for group in groups for m in group]
            blob = jsonfast.dumps([*kept, handoff, *results])
            if len(blob) <= self.max_entry_bytes:
                break
            if not groups:
                return False
            groups.pop(0)
        self._purge()
        self._serial += 1
        entry = _Entry(owner, tuple(call_ids), blob, self.clock() + self.ttl_s)
        self._entries[self._serial] = entry
        self._total += len(blob)
        for call_id in entry.call_ids:
            self._by_call[(owner, call_id)] = self._serial
        while len(self._entries) > self.max_entries or self._total > self.max_total_bytes:
            self._drop(next(iter(self._entries)))
        return self._serial in self._entries

    def splice(self, owner: Owner, messages: Sequence[Message]) -> tuple[list[Message], int]:
        """The history with each known handoff's assistant message replaced by the ghost's own
        steps and that message as the model wrote it; also how many handoffs were found."""
        self._purge()
        spliced: list[Message] = []
        hits = 0
        for message in messages:
            serial = self._match(owner, message)
            if serial is None:
                spliced.append(message)
                continue
            entry = self._entries[serial]
            entry.expires = self.clock() + self.ttl_s
            self._entries.move_to_end(serial)
            spliced.extend(jsonfast.loads(entry.blob))
            hits += 1
        return spliced, hits

    def _match(self, owner: Owner, message: Message) -> int | None:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            return None
        calls = message.get("tool_calls")
        if not isinstance(calls, list):
            return None
        ids = {c.get("id") for c in calls if isinstance(c, dict)}
        for call_id in ids:
            if not isinstance(call_id, str):
                continue
            serial = self._by_call.get((owner, call_id))
            if serial is not None and set(self._entries[serial].call_ids) <= ids:
                return serial
        return None

    def _purge(self) -> None:
        now = self.clock()
        for serial in [s for s, e in self._entries.items() if e.expires <= now]:
            self._drop(serial)

    def _drop(self, serial: int) -> None:
        entry = self._entries.pop(serial)
        self._total -= len(entry.blob)
        for call_id in entry.call_ids:
            if self._by_call.get((entry.owner, call_id)) == serial:
                del self._by_call[(entry.owner, call_id)]
