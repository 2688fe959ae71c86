"""The dashboard's state computed from the log: the index and the activity windows on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparks.server.ui import figures
from sparks.server.ui.log_index import LogIndex


class DashboardData:
    """The log index and the activity windows computed from it."""

    def __init__(self, log_path: Path) -> None:
        self.index = LogIndex(log_path)
        self.windows = figures.WindowCache()

    def activity(self, by: str, since: str | None) -> dict[str, Any]:
        def view(index: LogIndex) -> dict[str, Any]:
            return self.windows.figures(index.rows, index.dropped, index.generation, by, since)

        return self.index.read(view)
