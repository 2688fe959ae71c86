"""A ghost's tools: OpenAI `tools` schemas and the code that runs a call.

`run_tool` never raises for anything the model sends: unknown tools, bad JSON, missing
arguments, refusals and timeouts all come back as `ToolResult(ok=False, ...)` whose
output tells the model what went wrong. Path rules live in `workspace.py`, the
`shell` tool in `shell.py`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparks.ghosts.readonly_commands import (
    GIT_READ_ONLY_SUBCOMMANDS,
    READ_ONLY_PROGRAMS,
    ShellRefused,
)
from sparks.ghosts.shell import TRUNCATION_MARKER, SandboxUnavailable, run_shell
from sparks.ghosts.workspace import (
    SearchError,
    WorkspaceError,
    display_path,
    looks_binary,
    resolve_in_workspace,
    search_workspace,
    visible_tree,
    write_atomic,
)

TOOL_NAMES = ("read_file", "list_dir", "search", "write_file", "edit_file", "shell")
WRITE_TOOLS = frozenset({"write_file", "edit_file"})
MAX_LIST_ENTRIES = 500
MAX_LINE_CHARS = 300
MAX_WRITE_CHARS = 5_000_000
NO_OUTPUT = "(no output)\n"


@dataclass(frozen=True)
class ToolContext:
    """What a ghost's tool calls may reach; built once per ghost request by the loop."""

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


def _schema(description: str, required: Sequence[str], **properties: dict) -> dict:
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    return {"description": description, "parameters": parameters}


_STR = {"type": "string"}
_SCHEMAS = {
    "read_file": _schema(
        "Read a text file from the workspace. The first output line gives the range shown "
        "and the file's total line count; the lines follow as plain text.",
        ["path"],
        path={**_STR, "description": "File path, relative to the workspace."},
        offset={"type": "integer", "description": "First line to show, 1-based (default 1)."},
        limit={"type": "integer", "description": "Maximum number of lines (default 400)."},
    ),
    "list_dir": _schema(
        "List a workspace directory as an indented tree; directories end with '/'.",
        [],
        path={**_STR, "description": "Directory, relative to the workspace (default '.')."},
        depth={"type": "integer", "description": "Levels to descend, 1-5 (default 2)."},
    ),
    "search": _schema(
        "Search file contents with a regular expression; results are 'path:line: text'.",
        ["pattern"],
        pattern={**_STR, "description": "Regular expression (no look-around)."},
        path={**_STR, "description": "File or directory to search (default '.')."},
        glob={**_STR, "description": "Only files whose name matches, e.g. '*.py'."},
        max_hits={"type": "integer", "description": "Maximum matches (default 100)."},
    ),
    "write_file": _schema(
        "Create or overwrite a workspace file with the given content.",
        ["path", "content"],
        path={**_STR, "description": "File path, relative to the workspace."},
        content={**_STR, "description": "The complete new file content."},
    ),
    "edit_file": _schema(
        "Replace one exact, unique occurrence of `old` with `new` in a workspace file.",
        ["path", "old", "new"],
        path={**_STR, "description": "File path, relative to the workspace."},
        old={**_STR, "description": "Exact text to replace; include context to make it unique."},
        new={**_STR, "description": "Replacement text."},
    ),
}
_SHELL_PARAMETERS = {
    "command": {**_STR, "description": "The command line."},
    "timeout_s": {"type": "number", "description": "Seconds before the command is killed."},
}
_SHELL_DESCRIPTION = {
    False: "Run a shell command (/bin/sh -c) in the workspace; output ends with the exit code.",
    True: "Run one read-only program in the workspace, without a shell: no pipes, redirects, "
    f"';', '&&', variables or unquoted globs. Allowed: {', '.join(sorted(READ_ONLY_PROGRAMS))}; "
    f"git only with {'/'.join(sorted(GIT_READ_ONLY_SUBCOMMANDS))}.",
}


def tool_schemas(tool_names: Sequence[str], read_only: bool) -> list[dict]:
    """The OpenAI `tools` list for a ghost; read-only ghosts never see the write tools."""
    unknown = [name for name in tool_names if name not in TOOL_NAMES]
    if unknown:
        raise ValueError(f"unknown tools {unknown}; accepted: {', '.join(TOOL_NAMES)}")
    tools = []
    for name in tool_names:
        if read_only and name in WRITE_TOOLS:
            continue
        if name == "shell":
            function = _schema(_SHELL_DESCRIPTION[read_only], ["command"], **_SHELL_PARAMETERS)
        else:
            function = _SCHEMAS[name]
        tools.append({"type": "function", "function": {"name": name, **function}})
    return tools


def _clip(text: object, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def args_summary(name: str, arguments: dict, log_content: bool) -> str:
    """One line for progress display; file content only appears when `log_content` is set."""
    args = arguments if isinstance(arguments, dict) else {}
    path = _clip(args.get("path", "."), 80)
    if name == "read_file":
        window = [f"{key}={args[key]}" for key in ("offset", "limit") if key in args]
        text = f"{path} {' '.join(window)}"
    elif name == "list_dir":
        text = f"{path} depth={args.get('depth', 2)}"
    elif name == "search":
        text = f"/{_clip(args.get('pattern', ''), 60)}/ in {path}"
        text += f" glob={args['glob']}" if args.get("glob") else ""
    elif name == "write_file":
        content = args.get("content", "")
        text = f"{path} ({len(content) if isinstance(content, str) else '?'} chars)"
        text += f": {_clip(repr(content), 60)}" if log_content else ""
    elif name == "edit_file":
        text = path
        if log_content:
            text += f": {_clip(repr(args.get('old', '')), 40)} → {_clip(repr(args.get('new')), 40)}"
    elif name == "shell":
        text = str(args.get("command", ""))
    else:
        text = ", ".join(sorted(str(key) for key in args))
    return _clip(text, 120)


def cap_output(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-8 bytes, with a marker saying how much was dropped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return kept + TRUNCATION_MARKER.format(n=len(data) - len(kept.encode()))


def _arg(args: dict, key: str, kind: type, default: Any = ..., lo: float = 0, hi: float = 0) -> Any:
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


def _read_file(ctx: ToolContext, args: dict) -> ToolResult:
    path = resolve_in_workspace(ctx.workspace, _arg(args, "path", str))
    shown = display_path(ctx.workspace, path)
    offset = _arg(args, "offset", int, 1, 0, 10**9) or 1
    limit = _arg(args, "limit", int, 400, 1, 2000)
    with path.open("rb") as handle:
        if looks_binary(handle.read(8192)):
            return ToolResult(False, f"error: {shown} is a binary file; not shown", "binary file")
        handle.seek(0)
        selected, total = [], 0
        for total, line in enumerate(handle, start=1):
            if offset <= total < offset + limit:
                selected.append(line.decode("utf-8", "replace"))
    if total == 0:
        return ToolResult(True, f"[{shown}: empty file]", f"read empty file {shown}")
    if not selected:
        header = f"[{shown}: {total} lines; offset {offset} is past the end]"
        return ToolResult(False, header, f"offset past end of {shown}")
    last = offset + len(selected) - 1
    header = f"[{shown}: lines {offset}-{last} of {total}"
    header += f"; continue with offset={last + 1}]" if last < total else "]"
    body = "".join(selected)
    summary = f"read {len(selected)} lines of {shown}"
    return ToolResult(True, f"{header}\n{body}", summary)


def _list_dir(ctx: ToolContext, args: dict) -> ToolResult:
    root = resolve_in_workspace(ctx.workspace, _arg(args, "path", str, "."))
    depth = _arg(args, "depth", int, 2, 1, 5)
    shown = display_path(ctx.workspace, root)
    if not root.is_dir():
        return ToolResult(False, f"error: {shown} is not a directory", "not a directory")
    lines = visible_tree(root, depth, MAX_LIST_ENTRIES)
    more = f"\n[stopped at {MAX_LIST_ENTRIES} entries]" if len(lines) >= MAX_LIST_ENTRIES else ""
    header = f"[{shown}/: {len(lines)} entries, depth {depth}]"
    return ToolResult(True, "\n".join([header, *lines]) + more, f"listed {len(lines)} entries")


def _hit(rel: str, number: int, text: str) -> str:
    text = text.rstrip("\r\n")
    return f"{rel}:{number}: {text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + '…'}"


async def _search(ctx: ToolContext, args: dict) -> ToolResult:
    pattern = _arg(args, "pattern", str)
    start = resolve_in_workspace(ctx.workspace, _arg(args, "path", str, "."))
    glob = _arg(args, "glob", str, None) or None
    max_hits = _arg(args, "max_hits", int, 100, 1, 500)
    if not pattern:
        raise ToolArgumentError("argument 'pattern' must not be empty")
    try:
        found = await search_workspace(ctx.workspace, start, pattern, glob, max_hits, ctx.timeout_s)
    except SearchError as exc:
        raise ToolArgumentError(str(exc)) from None
    hits = [_hit(rel, number, text) for rel, number, text in found]
    where = display_path(ctx.workspace, start)
    if not hits:
        return ToolResult(True, f"[no matches for /{pattern}/ in {where}]", "no matches")
    stopped = f"; stopped at max_hits={max_hits}" if len(hits) >= max_hits else ""
    header = f"[{len(hits)} matches for /{pattern}/ in {where}{stopped}]"
    return ToolResult(True, "\n".join([header, *hits]), f"{len(hits)} matches")


def _line_count(text: str) -> int:
    return text.count("\n") + 1


def _write_file(ctx: ToolContext, args: dict) -> ToolResult:
    path = resolve_in_workspace(ctx.workspace, _arg(args, "path", str))
    content = _arg(args, "content", str)
    if len(content) > MAX_WRITE_CHARS:
        raise ToolArgumentError(f"content is over {MAX_WRITE_CHARS} characters")
    shown = display_path(ctx.workspace, path)
    if path.is_dir():
        return ToolResult(False, f"error: {shown} is a directory", "error: is a directory")
    existed = path.exists()
    data = content.encode("utf-8")
    write_atomic(path, data)
    verb = "overwrote" if existed else "created"
    summary = f"{verb} {shown} ({_line_count(content)} lines, {len(data)} bytes)"
    return ToolResult(True, summary, summary)


def _edit_file(ctx: ToolContext, args: dict) -> ToolResult:
    path = resolve_in_workspace(ctx.workspace, _arg(args, "path", str))
    old, new = _arg(args, "old", str), _arg(args, "new", str)
    if not old:
        raise ToolArgumentError("argument 'old' must not be empty")
    shown = display_path(ctx.workspace, path)
    data = path.read_bytes()
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
    write_atomic(path, text.replace(old, new, 1).encode("utf-8", "surrogateescape"))
    summary = f"edited {shown} at line {line} (-{_line_count(old)} +{_line_count(new)} lines)"
    return ToolResult(True, summary, summary)


async def _shell(ctx: ToolContext, args: dict) -> ToolResult:
    command = _arg(args, "command", str)
    timeout_s = min(_arg(args, "timeout_s", float, ctx.timeout_s, 0.1, 1e9), ctx.timeout_s)
    if not command.strip():
        raise ToolArgumentError("argument 'command' must not be empty")
    run = await run_shell(
        command,
        workspace=ctx.workspace,
        read_only=ctx.read_only,
        sandbox=ctx.sandbox,
        timeout_s=timeout_s,
        max_output_bytes=max(ctx.max_output_bytes - 200, 100),
    )
    output = run.output + ("" if run.output.endswith("\n") else "\n") if run.output else NO_OUTPUT
    status = f"exit code {run.exit_code}"
    if run.timed_out:
        status = f"timed out after {timeout_s:g}s; process killed"
    elif run.exit_code is not None and run.exit_code < 0:
        status = f"killed by signal {-run.exit_code}"
    return ToolResult(run.exit_code == 0, f"{output}[{status}]", status)


_FILE_TOOLS = {
    "read_file": _read_file,
    "list_dir": _list_dir,
    "write_file": _write_file,
    "edit_file": _edit_file,
}
"""Blocking file tools, run in a worker thread so the event loop keeps serving."""


def _failure(kind: str, message: str) -> ToolResult:
    return ToolResult(False, f"{kind}: {message}", _clip(f"{kind}: {message}", 100))


async def run_tool(ctx: ToolContext, name: str, arguments_json: str) -> ToolResult:
    """Run one tool call; every problem becomes an ok=False result the model can read."""
    if name not in TOOL_NAMES:
        return _failure("error", f"unknown tool {name!r}; available: {', '.join(TOOL_NAMES)}")
    if ctx.read_only and name in WRITE_TOOLS:
        return _failure("refused", f"{name} is not available to a read-only ghost")
    if ctx.allowed_tools is not None and name not in ctx.allowed_tools:
        return _failure("refused", f"{name} is not one of this ghost's tools")
    try:
        args = json.loads(arguments_json) if arguments_json and arguments_json.strip() else {}
    except (json.JSONDecodeError, TypeError) as exc:
        return _failure("error", f"arguments are not valid JSON: {exc}")
    if not isinstance(args, dict):
        return _failure("error", "arguments must be a JSON object")
    try:
        if name == "shell":  # enforces its own, possibly shorter, timeout
            result = await _shell(ctx, args)
        else:
            async with asyncio.timeout(ctx.timeout_s):
                if name == "search":
                    result = await _search(ctx, args)
                else:
                    result = await asyncio.to_thread(_FILE_TOOLS[name], ctx, args)
    except (WorkspaceError, ShellRefused) as exc:
        return _failure("refused", str(exc))
    except (ToolArgumentError, SandboxUnavailable) as exc:
        return _failure("error", str(exc))
    except TimeoutError:
        return _failure("error", f"{name} timed out after {ctx.timeout_s:g}s")
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else None
        if where is not None and where.is_relative_to(ctx.workspace):
            where = where.relative_to(ctx.workspace)
        return _failure("error", f"{exc.strerror or exc}{f': {where}' if where else ''}")
    except Exception as exc:  # a bug here must not end the ghost's loop
        return _failure("error", f"internal error in {name}: {type(exc).__name__}: {exc}")
    return ToolResult(result.ok, cap_output(result.output, ctx.max_output_bytes), result.summary)
