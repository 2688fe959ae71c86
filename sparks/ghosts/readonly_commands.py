"""Which commands a read-only ghost's `shell` may run, vetted into an argv run without a shell.

Shell syntax is refused, the program must be on an allowlist, options known to write files or
run other programs are refused, and arguments are checked as workspace paths (best effort: a
program can open paths it was not given; the bwrap jail in shell.py is the real boundary).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from sparks.ghosts.workspace import (
    SECRET_DIR_NAMES,
    SECRET_FILE_GLOBS,
    WorkspaceError,
    resolve_in_workspace,
)

READ_ONLY_PROGRAMS = frozenset(
    "ls cat head tail wc grep rg find git file stat tree pwd echo du sort uniq cut".split()
)
GIT_READ_ONLY_SUBCOMMANDS = frozenset("status log diff show blame ls-files grep".split())
_NAMES_ONLY = frozenset("ls find stat du tree wc pwd echo".split())
"""Programs that print names or sizes, not content: secret-looking names may be arguments."""

# Options that write files or run other programs: exact words, long options (also with
# "=value"), and letters refused anywhere in a short-option cluster.
_FORBIDDEN_WORDS = {
    "find": set("-exec -execdir -ok -okdir -delete -fprint -fprint0 -fprintf -fls".split())
}
_FORBIDDEN_LONG = {
    "rg": ("--pre",),
    "git": ("--output", "--open-files-in-pager", "--ext-diff"),
    "sort": ("--output", "--compress-program"),
    "file": ("--compile",),
}
_FORBIDDEN_SHORT = {"sort": "o", "tree": "o", "git": "O", "file": "C"}


class ShellRefused(ValueError):
    """A command a read-only ghost may not run; the message is safe to show the model."""


def _shell_syntax(command: str) -> str | None:
    """The first piece of shell syntax a shell would interpret, or None."""
    quote = None
    i = 0
    while i < len(command):
        char = command[i]
        following = command[i + 1 : i + 2]
        if quote == "'":
            quote = None if char == "'" else quote
        elif char == "\\":
            i += 1
        elif char == "`":
            return "`"
        elif char == "$" and following and (following.isalnum() or following in "_{(?#@*!$-"):
            return "$" + following
        elif quote == '"':
            quote = None if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char in "|&;<>()\n":
            return command[i : i + 2] if following == char else char
        elif char in "*?":
            return f"unquoted glob {char!r}"
        i += 1
    return None


def _check_option(program: str, arg: str) -> None:
    forbidden = _FORBIDDEN_WORDS.get(program, set())
    long_options = _FORBIDDEN_LONG.get(program, ())
    short_letters = _FORBIDDEN_SHORT.get(program, "")
    if arg in forbidden or any(arg == opt or arg.startswith(opt + "=") for opt in long_options):
        raise ShellRefused(f"{program} {arg} is not allowed for a read-only ghost")
    if short_letters and arg.startswith("-") and not arg.startswith("--"):
        if any(letter in arg[1:] for letter in short_letters):
            raise ShellRefused(f"{program} {arg} is not allowed for a read-only ghost")


def _check_path_arg(program: str, arg: str, workspace: Path) -> None:
    if program == "git" and ":" in arg:
        arg = arg.split(":", 1)[1] or "."  # rev:path
    try:
        resolve_in_workspace(workspace, arg, allow_secret=program in _NAMES_ONLY)
    except WorkspaceError as exc:
        raise ShellRefused(f"argument {arg!r}: {exc}") from None


def read_only_argv(command: str, workspace: Path, env: Mapping[str, str]) -> list[str]:
    """Parse and vet a read-only ghost's command into an argv run without a shell."""
    syntax = _shell_syntax(command)
    if syntax is not None:
        raise ShellRefused(
            f"shell syntax ({syntax}) is not allowed: read-only commands run without a shell; "
            "give one program with plain arguments"
        )
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ShellRefused(f"cannot parse command: {exc}") from None
    if not argv:
        raise ShellRefused("empty command")
    program, args = argv[0], argv[1:]
    if program not in READ_ONLY_PROGRAMS:
        allowed = ", ".join(sorted(READ_ONLY_PROGRAMS))
        raise ShellRefused(f"{program!r} is not allowed for a read-only ghost; allowed: {allowed}")
    if program == "git" and (not args or args[0] not in GIT_READ_ONLY_SUBCOMMANDS):
        allowed = ", ".join(sorted(GIT_READ_ONLY_SUBCOMMANDS))
        raise ShellRefused(f"read-only ghosts may run git with one of: {allowed}")
    pattern_pending = program in ("grep", "rg") or (program == "git" and args[0] == "grep")
    if any(a.startswith(("--regexp", "--file", "-e", "-f")) for a in args):
        pattern_pending = False  # the pattern comes from an option; every positional is a path
    positional_only = False
    for index, arg in enumerate(args):
        if program == "git" and index == 0:
            continue
        if program == "echo":
            break
        if arg == "--" and not positional_only:
            positional_only = True
            continue
        if arg.startswith("-") and not positional_only:
            _check_option(program, arg)
            _, has_value, value = arg.partition("=")
            if has_value and value.startswith(("/", "~", "..")):
                _check_path_arg(program, value, workspace)
            continue
        if pattern_pending:
            pattern_pending = False
            continue
        _check_path_arg(program, arg, workspace)
    if program == "uniq" and sum(not a.startswith("-") and not a.isdigit() for a in args) > 1:
        raise ShellRefused("uniq with an output file is not allowed for a read-only ghost")
    executable = shutil.which(program, path=env.get("PATH"))
    if executable is None or not os.path.isabs(executable):
        raise ShellRefused(f"{program!r} is not installed")
    if Path(executable).resolve().is_relative_to(workspace):
        raise ShellRefused(f"{program!r} resolves to a file inside the workspace")
    if program == "git":
        return [executable, "-c", "core.fsmonitor=false", *args]
    # Our excludes go last so that they win over the model's own --include / --glob.
    end = args.index("--") if "--" in args else len(args)
    return [executable, *args[:end], *_secret_excludes(program), *args[end:]]


def _secret_excludes(program: str) -> list[str]:
    """Flags that keep a recursive grep or rg out of secret files."""
    if program == "grep":
        return [f"--exclude={glob}" for glob in SECRET_FILE_GLOBS] + [
            f"--exclude-dir={name}" for name in sorted(SECRET_DIR_NAMES)
        ]
    if program == "rg":
        globs = [*SECRET_FILE_GLOBS, *sorted(SECRET_DIR_NAMES)]
        return ["--no-config", *(f"--iglob=!{glob}" for glob in globs)]
    return []
