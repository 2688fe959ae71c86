"""What one tool call gets and gives back: its context, its result, and argument parsing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ToolContext:
    """What a ghost's tool calls may reach; built once per ghost request (`tool_context`)."""

    workspace: Path  # absolute, resolved
    read_only: bool
    sandbox: str  # "auto" | "bwrap" | "none"
    log_content: bool = False  # read by args_summary's caller, never changes what tools do
    timeout_s: float = 30.0  # per call
    max_output_bytes: int = 32_000
    allowed_tools: frozenset[str] | None = None  # the ghost's `tools`; None = every tool


@dataclass(frozen=True)
class ToolResult:
    """One call's outcome: `output` goes back to the model, `summary` to progress and logs."""

    ok: bool
    output: str  # the tool message content for the model, capped
    summary: str  # one short line for progress display and the observer


class ToolArgumentError(ValueError):
    """An argument is missing or has the wrong type; the message names it."""


def tool_arg(
    args: dict, key: str, kind: type, default: Any = ..., lo: float = 0, hi: float = 0
) -> Any:
    """`args[key]` as `kind` (str, int or float within [lo, hi]), or ToolArgumentError."""
    value = args.get(key)
    if value is None:
        if default is ...:
            raise ToolArgumentError(f"missing required argument {key!r}")
        return default
    if kind is str:
        if not isinstance(value, str):
            raise ToolArgumentError(f"argument {key!r} must be a string")
        return value
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or value != kind(value):
        raise ToolArgumentError(
            f"argument {key!r} must be {'an integer' if kind is int else 'a number'}"
        )
    if not lo <= value <= hi:
        raise ToolArgumentError(f"argument {key!r} must be between {lo:g} and {hi:g}")
    return kind(value)
