"""Placeholder replaced by the ghost loop."""

from __future__ import annotations

from typing import Any

from ..errors import SparksError


class GhostRunner:
    def __init__(self, config: Any, catalog: Any, upstreams: Any) -> None:
        self.config = config

    async def handle(self, request: Any, chat: Any, route: Any) -> Any:
        raise SparksError(503, "no_backend", "ghosts are not available yet")
