"""A ghost's tools: the OpenAI `tools` schemas it is offered and the code that runs a call.

`run_tool` never raises for anything the model sends: unknown tools, bad JSON, missing
arguments, refusals and timeouts all come back as `ToolResult(ok=False, ...)` whose output
tells the model what went wrong. Confinement lives in workspace.py (confined opens),
search.py, jail.py (bwrap) and secrets.py (what is never shown).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from sparks.ghosts import file_tools
from sparks.ghosts.definitions import TOOL_NAMES, WRITE_TOOLS, GhostSpec
from sparks.ghosts.jail import SandboxUnavailable, jail_unavailable_reason
from sparks.ghosts.search import SearchError, search_workspace
from sparks.ghosts.shell import TRUNCATION_MARKER, ShellRefused, run_shell
from sparks.ghosts.tool_call import ToolArgumentError, ToolContext, ToolResult, tool_arg
from sparks.ghosts.workspace import WorkspaceError

__all__ = [
    "TOOL_NAMES",
    "WRITE_TOOLS",
    "ToolContext",
    "ToolResult",
    "args_summary",
    "offered_tool_schemas",
    "run_tool",
    "shell_unavailable_reason",
    "tool_context",
    "tool_schemas",
    "unjailed_shell_warning",
]

MAX_LINE_CHARS = 300
NO_OUTPUT = "(no output)\n"


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
    True: "Run a shell command (/bin/sh -c) in a read-only jail of the workspace: no network, "
    "nothing outside the workspace, and no change is kept. Output ends with the exit code.",
}


def tool_schemas(tool_names: Sequence[str], read_only: bool) -> list[dict]:
    """The OpenAI `tools` list for these names; read-only ghosts never see the write tools."""
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


def shell_unavailable_reason(spec: GhostSpec) -> str | None:
    """Why this ghost's configured `shell` is not offered (for serve and doctor), or None when
    it is offered or not configured. Probes bubblewrap once per process (cached)."""
    if "shell" not in spec.tools:
        return None
    return jail_unavailable_reason(spec.sandbox, spec.read_only)


def unjailed_shell_warning(spec: GhostSpec) -> str | None:
    """The warning serve prints when this ghost's shell will run without the jail."""
    if "shell" not in spec.tools or spec.read_only or spec.sandbox != "none":
        return None
    return (
        'sandbox = "none": its shell runs unjailed, as you, with your files '
        "and network (file tools stay confined)"
    )


def _offered_names(spec: GhostSpec) -> tuple[str, ...]:
    names = [n for n in spec.tools if not (spec.read_only and n in WRITE_TOOLS)]
    if "shell" in names and shell_unavailable_reason(spec) is not None:
        names.remove("shell")
    return tuple(names)


def offered_tool_schemas(spec: GhostSpec) -> list[dict]:
    """What the model is offered: the ghost's tools, minus write tools for read-only ghosts,
    minus `shell` where it cannot run (see `shell_unavailable_reason`)."""
    return tool_schemas(_offered_names(spec), spec.read_only)


def tool_context(spec: GhostSpec, log_content: bool, timeout_s: float) -> ToolContext:
    """The context `run_tool` needs for one request of this ghost."""
    return ToolContext(
        workspace=Path(spec.workspace),
        read_only=spec.read_only,
        sandbox=spec.sandbox,
        log_content=log_content,
        timeout_s=timeout_s,
        allowed_tools=frozenset(_offered_names(spec)),
    )


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


def _hit(rel: str, number: int, text: str) -> str:
    text = text.rstrip("\r\n")
    return f"{rel}:{number}: {text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + '…'}"


async def _search(ctx: ToolContext, args: dict) -> ToolResult:
    pattern = tool_arg(args, "pattern", str)
    raw_start = tool_arg(args, "path", str, ".")
    glob = tool_arg(args, "glob", str, None) or None
    max_hits = tool_arg(args, "max_hits", int, 100, 1, 500)
    if not pattern:
        raise ToolArgumentError("argument 'pattern' must not be empty")
    try:
        where, found = await search_workspace(
            ctx.workspace, raw_start, pattern, glob, max_hits, ctx.timeout_s
        )
    except SearchError as exc:
        raise ToolArgumentError(str(exc)) from None
    hits = [_hit(rel, number, text) for rel, number, text in found]
    if not hits:
        return ToolResult(True, f"[no matches for /{pattern}/ in {where}]", "no matches")
    stopped = f"; stopped at max_hits={max_hits}" if len(hits) >= max_hits else ""
    header = f"[{len(hits)} matches for /{pattern}/ in {where}{stopped}]"
    return ToolResult(True, "\n".join([header, *hits]), f"{len(hits)} matches")


async def _shell(ctx: ToolContext, args: dict) -> ToolResult:
    command = tool_arg(args, "command", str)
    timeout_s = min(tool_arg(args, "timeout_s", float, ctx.timeout_s, 0.1, 1e9), ctx.timeout_s)
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
    "read_file": file_tools.read_file,
    "list_dir": file_tools.list_dir,
    "write_file": file_tools.write_file,
    "edit_file": file_tools.edit_file,
}
"""Blocking file tools, run in a worker thread; none of them can block on a FIFO or a device,
and their walks stop at the call's deadline, so a timed-out thread ends soon too."""


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
        where = Path(exc.filename) if isinstance(exc.filename, str) else None
        if where is not None and where.is_absolute():
            where = (
                where.relative_to(ctx.workspace) if where.is_relative_to(ctx.workspace) else None
            )
        return _failure("error", f"{exc.strerror or exc}{f': {where}' if where else ''}")
    except Exception as exc:  # a bug here must not end the ghost's loop
        return _failure("error", f"internal error in {name}: {type(exc).__name__}: {exc}")
    return ToolResult(result.ok, cap_output(result.output, ctx.max_output_bytes), result.summary)
