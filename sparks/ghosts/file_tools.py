"""`read_file`, `list_dir`, `write_file` and `edit_file`: blocking, run in a worker thread.

Every path goes through the confined opens in workspace.py; reads load at most a cap, so a
huge or sparse file costs the cap, not its size. Walks take a deadline so a thread the
caller stopped waiting for also stops soon.
"""

from __future__ import annotations

import os
import time
from pathlib import PurePath

from sparks.ghosts.listing import visible_tree
from sparks.ghosts.tool_call import ToolArgumentError, ToolContext, ToolResult, tool_arg
from sparks.ghosts.workspace import (
    display,
    looks_binary,
    open_directory,
    open_regular,
    read_capped,
    requested_parts,
    write_beneath,
)

MAX_READ_BYTES = 4 << 20
MAX_EDIT_BYTES = 8 << 20
MAX_WRITE_CHARS = 5_000_000
MAX_LIST_ENTRIES = 500


def read_file(ctx: ToolContext, args: dict) -> ToolResult:
    raw = tool_arg(args, "path", str)
    offset = tool_arg(args, "offset", int, 1, 0, 10**9) or 1
    limit = tool_arg(args, "limit", int, 400, 1, 2000)
    shown = display(requested_parts(ctx.workspace, raw))
    fd, _ = open_regular(ctx.workspace, raw)
    try:
        size = os.fstat(fd).st_size
        data, truncated = read_capped(fd, MAX_READ_BYTES)
    finally:
        os.close(fd)
    if looks_binary(data):
        return ToolResult(False, f"error: {shown} is a binary file; not shown", "binary file")
    lines = _split_lines(data)
    if truncated and lines and not lines[-1].endswith(b"\n"):
        lines.pop()  # a partial last line is not shown as if it were whole
    total = len(lines)
    of_total = f"at least {total} (only the first {MAX_READ_BYTES} of {size} bytes read)"
    of_total = of_total if truncated else str(total)
    if total == 0 and not truncated:
        return ToolResult(True, f"[{shown}: empty file]", f"read empty file {shown}")
    selected = lines[offset - 1 : offset - 1 + limit]
    if not selected:
        header = f"[{shown}: {of_total} lines; offset {offset} is past the end]"
        return ToolResult(False, header, f"offset past end of {shown}")
    last = offset + len(selected) - 1
    header = f"[{shown}: lines {offset}-{last} of {of_total}"
    header += f"; continue with offset={last + 1}]" if last < total else "]"
    summary = f"read {len(selected)} lines of {shown}"
    body = b"".join(selected).decode("utf-8", "replace")
    return ToolResult(True, f"{header}\n{body}", summary)


def _split_lines(data: bytes) -> list[bytes]:
    """Lines split at \\n only, each keeping its newline, as iterating a binary file does."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    last = lines.pop()
    if last != b"\n":
        lines.append(last[:-1])
    return lines


def list_dir(ctx: ToolContext, args: dict) -> ToolResult:
    raw = tool_arg(args, "path", str, ".")
    depth = tool_arg(args, "depth", int, 2, 1, 5)
    shown = display(requested_parts(ctx.workspace, raw))
    try:
        fd, real = open_directory(ctx.workspace, raw)
    except NotADirectoryError:
        return ToolResult(False, f"error: {shown} is not a directory", "not a directory")
    try:
        deadline = time.monotonic() + ctx.timeout_s
        lines = visible_tree(fd, PurePath(*real), depth, MAX_LIST_ENTRIES, deadline)
    finally:
        os.close(fd)
    more = f"\n[stopped at {MAX_LIST_ENTRIES} entries]" if len(lines) >= MAX_LIST_ENTRIES else ""
    header = f"[{shown}/: {len(lines)} entries, depth {depth}]"
    return ToolResult(True, "\n".join([header, *lines]) + more, f"listed {len(lines)} entries")


def _line_count(text: str) -> int:
    return text.count("\n") + 1


def write_file(ctx: ToolContext, args: dict) -> ToolResult:
    raw = tool_arg(args, "path", str)
    content = tool_arg(args, "content", str)
    if len(content) > MAX_WRITE_CHARS:
        raise ToolArgumentError(f"content is over {MAX_WRITE_CHARS} characters")
    shown = display(requested_parts(ctx.workspace, raw))
    data = content.encode("utf-8")
    try:
        existed, _ = write_beneath(ctx.workspace, raw, data)
    except IsADirectoryError:
        return ToolResult(False, f"error: {shown} is a directory", "error: is a directory")
    verb = "overwrote" if existed else "created"
    summary = f"{verb} {shown} ({_line_count(content)} lines, {len(data)} bytes)"
    return ToolResult(True, summary, summary)


def edit_file(ctx: ToolContext, args: dict) -> ToolResult:
    raw = tool_arg(args, "path", str)
    old, new = tool_arg(args, "old", str), tool_arg(args, "new", str)
    if not old:
        raise ToolArgumentError("argument 'old' must not be empty")
    shown = display(requested_parts(ctx.workspace, raw))
    fd, _ = open_regular(ctx.workspace, raw)
    try:
        data, truncated = read_capped(fd, MAX_EDIT_BYTES)
    finally:
        os.close(fd)
    if truncated:
        return ToolResult(False, f"error: {shown} is over {MAX_EDIT_BYTES} bytes", "too large")
    if looks_binary(data):
        return ToolResult(False, f"error: {shown} is a binary file", "error: binary file")
    text = data.decode("utf-8", "surrogateescape")
    count = text.count(old)
    if count == 0:
        return ToolResult(False, f"error: old text not found in {shown}", "old text not found")
    if count > 1:
        message = f"old text occurs {count} times in {shown}; give more context"
        return ToolResult(False, f"error: {message}", f"old text occurs {count} times")
    line = text[: text.index(old)].count("\n") + 1
    write_beneath(ctx.workspace, raw, text.replace(old, new, 1).encode("utf-8", "surrogateescape"))
    summary = f"edited {shown} at line {line} (-{_line_count(old)} +{_line_count(new)} lines)"
    return ToolResult(True, summary, summary)
