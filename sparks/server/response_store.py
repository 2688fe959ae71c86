"""Stored responses for `store: true`, `previous_response_id` and GET/DELETE /v1/responses/{id}.

In memory, for the daemon's lifetime only, and bounded both ways: at most `max_count`
responses and `max_bytes` of their JSON (the response, its input items and the conversation
before it); the oldest go first. A response larger than the whole budget is not kept.
Nothing here survives a restart; an id that is gone is answered 404 `not_found`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sparks.errors import SparksError
from sparks.fronts.responses import new_id

MAX_STORED_RESPONSES = 1000
MAX_STORED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # this request's own input, with item ids
    history: list[dict[str, Any]]  # the items before it (previous responses' inputs and outputs)
    size: int

    def conversation(self) -> list[dict[str, Any]]:
        """What a follow-up with `previous_response_id` continues: history, input, output."""
        return [*self.history, *self.input_items, *self.response.get("output", [])]


class ResponseStore:
    """Oldest-first eviction under a count and a byte limit."""

    def __init__(
        self, max_count: int = MAX_STORED_RESPONSES, max_bytes: int = MAX_STORED_BYTES
    ) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        history: list[dict[str, Any]],
    ) -> bool:
        """Keep a finished response; False when it alone is over the byte budget."""
        size = len(json.dumps([response, input_items, history], separators=(",", ":")))
        if size > self.max_bytes:
            return False
        self.delete(response["id"])
        self._entries[response["id"]] = StoredResponse(response, input_items, history, size)
        self.bytes += size
        while len(self._entries) > self.max_count or self.bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.size
        return True

    def get(self, response_id: str) -> StoredResponse:
        entry = self._entries.get(response_id)
        if entry is None:
            raise SparksError(
                404,
                "not_found",
                f"No response with id '{response_id}' (responses are kept in memory, only "
                "with store: true, and not across restarts)",
            )
        return entry

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self.bytes -= entry.size
        return entry is not None


def with_item_ids(items: list[dict[str, Any]], prefix: str = "msg") -> list[dict[str, Any]]:
    """Input items as the input_items endpoint lists them: each with an `id`."""
    return [item if item.get("id") else {"id": new_id(prefix), **item} for item in items]
