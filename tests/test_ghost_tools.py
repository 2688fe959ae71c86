"""Ghost file tools through `run_tool`: refusals come back as results, never as exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparks.ghosts import jail, search, tools
from sparks.ghosts.definitions import GhostSpec
from sparks.ghosts.tools import (
    ToolContext,
    args_summary,
    offered_tool_schemas,
    run_tool,
    shell_unavailable_reason,
    tool_context,
    tool_schemas,
)

from .conftest import skip_or_fail


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\n\nprint('hello')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    return root


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return ToolContext(workspace=ws, read_only=False, sandbox="none")


@pytest.fixture(params=["ripgrep", "python"])
def search_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a search test with jailed ripgrep (when it can run here) and with the Python walk."""
    if request.param == "ripgrep":
        if search.jailed_ripgrep() is None:
            skip_or_fail("ripgrep or a working bubblewrap is missing")
    else:
        monkeypatch.setattr(search, "jailed_ripgrep", lambda: None)
    return request.param


async def call(ctx: ToolContext, name: str, **arguments: object) -> tools.ToolResult:
    return await run_tool(ctx, name, json.dumps(arguments))


@pytest.mark.parametrize(
    "path", ["../outside/secret.txt", "/etc/passwd", "src/../../outside/secret.txt"]
)
async def test_escaping_paths_are_refused_in_the_result(ctx: ToolContext, path: str) -> None:
    result = await call(ctx, "read_file", path=path)
    assert not result.ok
    assert "escapes the workspace" in result.output
    assert result.summary.startswith("refused:")
    assert "TOP SECRET" not in result.output


async def test_symlink_to_outside_file_is_refused(ctx: ToolContext, ws: Path) -> None:
    (ws / "notes.txt").symlink_to(ws.parent / "outside" / "secret.txt")
    result = await call(ctx, "read_file", path="notes.txt")
    assert not result.ok and "escapes" in result.output and "TOP SECRET" not in result.output


async def test_symlinked_dir_pointing_out_is_refused_for_read_and_write(
    ctx: ToolContext, ws: Path
) -> None:
    (ws / "src" / "lib").symlink_to(ws.parent / "outside", target_is_directory=True)
    read = await call(ctx, "read_file", path="src/lib/secret.txt")
    write = await call(ctx, "write_file", path="src/lib/planted.txt", content="x")
    assert not read.ok and not write.ok
    assert not (ws.parent / "outside" / "planted.txt").exists()


@pytest.mark.parametrize("path", [".env", "id_rsa", "server.pem", ".ssh/config", "a/.env.prod"])
async def test_secret_files_are_refused(ctx: ToolContext, ws: Path, path: str) -> None:
    (ws / path).parent.mkdir(parents=True, exist_ok=True)
    (ws / path).write_text("PRIVATE MATERIAL\n")
    for result in (
        await call(ctx, "read_file", path=path),
        await call(ctx, "write_file", path=path, content="x"),
        await call(ctx, "edit_file", path=path, old="PRIVATE", new="x"),
    ):
        assert not result.ok
        assert "secrets file" in result.output and "PRIVATE" not in result.output
    assert (ws / path).read_text() == "PRIVATE MATERIAL\n"


async def test_absolute_path_inside_workspace_is_fine(ctx: ToolContext, ws: Path) -> None:
    result = await call(ctx, "read_file", path=str(ws / "src" / "app.py"))
    assert result.ok and "print('hello')" in result.output


async def test_read_file_header_gives_range_and_total(ctx: ToolContext, ws: Path) -> None:
    (ws / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    result = await call(ctx, "read_file", path="long.txt", offset=3, limit=2)
    assert result.output == "[long.txt: lines 3-4 of 10; continue with offset=5]\nline 3\nline 4\n"
    assert result.summary == "read 2 lines of long.txt"


async def test_read_file_refuses_binary(ctx: ToolContext, ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x7fELF\x00\x01")
    result = await call(ctx, "read_file", path="blob.bin")
    assert not result.ok and "binary" in result.output


async def test_missing_file_is_an_error_result(ctx: ToolContext) -> None:
    result = await call(ctx, "read_file", path="nope.txt")
    assert not result.ok and "No such file" in result.output and "nope.txt" in result.output


async def test_output_is_capped_with_truncation_marker(ws: Path) -> None:
    ctx = ToolContext(workspace=ws, read_only=False, sandbox="none", max_output_bytes=1000)
    (ws / "big.txt").write_text("x" * 80 + "\n" * 1 + ("y" * 99 + "\n") * 100)
    result = await call(ctx, "read_file", path="big.txt")
    assert result.ok
    assert len(result.output.encode()) < 1100
    assert result.output.endswith(" bytes]") and "[… truncated " in result.output


async def test_list_dir_shows_tree_without_secrets_or_git(ctx: ToolContext, ws: Path) -> None:
    (ws / ".env").write_text("KEY=1")
    (ws / ".git").mkdir()
    (ws / "src" / "pkg").mkdir()
    (ws / "src" / "pkg" / "deep.py").write_text("")
    result = await call(ctx, "list_dir", path=".", depth=2)
    assert result.ok
    assert result.output.splitlines() == ["[./: 3 entries, depth 2]", "src/", "  pkg/", "  app.py"]


async def test_search_finds_matches_as_path_line_text(
    ctx: ToolContext, ws: Path, search_backend: str
) -> None:
    result = await call(ctx, "search", pattern=r"print\(", path=".")
    assert result.ok, result.output
    assert result.output.splitlines()[1:] == ["src/app.py:3: print('hello')"]


async def test_search_never_returns_secret_file_contents(
    ctx: ToolContext, ws: Path, search_backend: str
) -> None:
    (ws / ".env").write_text("OPENAI_API_KEY=sk-live-123\n")
    (ws / "deploy").mkdir()
    (ws / "deploy" / "server.key").write_text("sk-live-123\n")
    (ws / ".ssh").mkdir()
    (ws / ".ssh" / "config").write_text("sk-live-123\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("sk-live-123\n")
    for args in ({"pattern": "sk-live"}, {"pattern": "sk-live", "glob": ".env"}):
        result = await call(ctx, "search", **args)
        assert "sk-live-123" not in result.output
    direct = await call(ctx, "search", pattern="sk-live", path=".env")
    assert not direct.ok and "sk-live-123" not in direct.output


async def test_search_invalid_regex_is_a_clear_error(ctx: ToolContext, search_backend: str) -> None:
    result = await call(ctx, "search", pattern="(unclosed")
    assert not result.ok
    assert "regex" in result.output.lower()


async def test_search_stops_at_max_hits(ctx: ToolContext, ws: Path, search_backend: str) -> None:
    (ws / "many.txt").write_text("hit\n" * 50)
    result = await call(ctx, "search", pattern="hit", max_hits=5)
    assert result.ok
    assert len(result.output.splitlines()) == 6
    assert "stopped at max_hits=5" in result.output.splitlines()[0]


async def test_write_file_creates_parents_inside_workspace(ctx: ToolContext, ws: Path) -> None:
    result = await call(ctx, "write_file", path="new/deep/mod.py", content="x = 1\n")
    assert result.ok and result.summary.startswith("created new/deep/mod.py")
    assert (ws / "new" / "deep" / "mod.py").read_text() == "x = 1\n"
    assert sorted(p.name for p in ws.parent.iterdir()) == ["outside", "ws"]


async def test_write_file_outside_is_refused_and_nothing_written(
    ctx: ToolContext, ws: Path
) -> None:
    result = await call(ctx, "write_file", path="../outside/planted.txt", content="x")
    assert not result.ok
    assert not (ws.parent / "outside" / "planted.txt").exists()


async def test_edit_file_replaces_a_unique_occurrence(ctx: ToolContext, ws: Path) -> None:
    result = await call(ctx, "edit_file", path="src/app.py", old="'hello'", new="'bye'")
    assert result.ok and "line 3" in result.summary
    assert (ws / "src" / "app.py").read_text() == "import os\n\nprint('bye')\n"


async def test_edit_file_errors_when_old_text_is_absent(ctx: ToolContext, ws: Path) -> None:
    result = await call(ctx, "edit_file", path="src/app.py", old="nowhere", new="x")
    assert not result.ok and "old text not found" in result.output


async def test_edit_file_errors_when_old_text_is_not_unique(ctx: ToolContext, ws: Path) -> None:
    (ws / "dup.txt").write_text("a\na\na\n")
    result = await call(ctx, "edit_file", path="dup.txt", old="a", new="b")
    assert not result.ok
    assert "old text occurs 3 times" in result.output and "more context" in result.output
    assert (ws / "dup.txt").read_text() == "a\na\na\n"


def test_read_only_schemas_have_no_write_tools() -> None:
    names = [t["function"]["name"] for t in tool_schemas(tools.TOOL_NAMES, read_only=True)]
    assert names == ["read_file", "list_dir", "search", "shell"]
    full = tool_schemas(tools.TOOL_NAMES, read_only=False)
    assert [t["function"]["name"] for t in full] == list(tools.TOOL_NAMES)
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in full)


def test_unknown_tool_name_in_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="browse"):
        tool_schemas(["read_file", "browse"], read_only=False)


async def test_read_only_ghost_write_attempts_are_refused(ws: Path) -> None:
    ctx = ToolContext(workspace=ws, read_only=True, sandbox="none")
    write = await call(ctx, "write_file", path="x.txt", content="x")
    edit = await call(ctx, "edit_file", path="src/app.py", old="hello", new="bye")
    assert not write.ok and not edit.ok
    assert write.summary.startswith("refused:")
    assert not (ws / "x.txt").exists() and "hello" in (ws / "src" / "app.py").read_text()


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("read_file", "{not json", "not valid JSON"),
        ("read_file", "[1, 2]", "JSON object"),
        ("read_file", "{}", "missing required argument 'path'"),
        ("read_file", '{"path": 3}', "'path' must be a string"),
        ("read_file", '{"path": "src/app.py", "limit": "many"}', "'limit' must be an integer"),
        ("list_dir", '{"depth": 9}', "between 1 and 5"),
        ("browse", "{}", "unknown tool 'browse'"),
    ],
)
async def test_bad_arguments_become_error_results(
    ctx: ToolContext, name: str, arguments: str, expected: str
) -> None:
    result = await run_tool(ctx, name, arguments)
    assert not result.ok
    assert expected in result.output
    assert len(result.summary) <= 100


def test_args_summary_shows_content_only_with_log_content() -> None:
    arguments = {"path": "notes.md", "content": "my diary " * 100}
    quiet = args_summary("write_file", arguments, log_content=False)
    loud = args_summary("write_file", arguments, log_content=True)
    assert quiet == "notes.md (900 chars)"
    assert "diary" in loud and len(loud) <= 120
    edit = {"path": "a.py", "old": "secret_old", "new": "secret_new"}
    assert args_summary("edit_file", edit, log_content=False) == "a.py"
    assert len(args_summary("shell", {"command": "x" * 500}, log_content=False)) == 120
    assert args_summary("search", "not a dict", log_content=False) == "// in ."  # type: ignore[arg-type]


def spec_for(ws: Path, *, read_only: bool = False, sandbox: str = "auto") -> GhostSpec:
    return GhostSpec(
        name="scout" if read_only else "coder",
        description="",
        tools=tools.TOOL_NAMES,
        workspace=ws,
        read_only=read_only,
        model="",
        max_steps=5,
        sandbox=sandbox,
        soul="",
        step_timeout_s=60,
        run_timeout_s=600,
    )


def offered(spec: GhostSpec) -> list[str]:
    return [t["function"]["name"] for t in offered_tool_schemas(spec)]


def test_read_only_ghost_without_jail_is_not_offered_shell(ws: Path) -> None:
    spec = spec_for(ws, read_only=True, sandbox="none")
    assert offered(spec) == ["read_file", "list_dir", "search"]
    assert "read_only" in (shell_unavailable_reason(spec) or "")
    assert "shell" not in tool_context(spec, False, 5).allowed_tools


def test_unjailed_shell_is_offered_only_to_a_writing_ghost_that_chose_it(ws: Path) -> None:
    spec = spec_for(ws, sandbox="none")
    assert offered(spec) == list(tools.TOOL_NAMES)
    assert shell_unavailable_reason(spec) is None
    assert "unjailed" in (tools.unjailed_shell_warning(spec) or "")


def test_without_bubblewrap_auto_offers_no_shell_and_says_why(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jail, "bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    for read_only in (False, True):
        spec = spec_for(ws, read_only=read_only, sandbox="auto")
        assert "shell" not in offered(spec)
        assert "bubblewrap (bwrap) is not installed" in (shell_unavailable_reason(spec) or "")


def test_tool_context_carries_the_spec_and_the_callers_settings(ws: Path) -> None:
    ctx = tool_context(spec_for(ws, read_only=True), log_content=True, timeout_s=7.5)
    assert (ctx.workspace, ctx.read_only, ctx.log_content, ctx.timeout_s) == (ws, True, True, 7.5)
    assert not ctx.allowed_tools & tools.WRITE_TOOLS


async def test_huge_file_is_read_up_to_the_cap_and_says_so(ctx: ToolContext, ws: Path) -> None:
    (ws / "long.txt").write_bytes(b"line\n" * (2 << 20))
    result = await call(ctx, "read_file", path="long.txt", limit=2)
    assert result.ok
    assert result.output.splitlines()[0].startswith("[long.txt: lines 1-2 of at least ")
