"""`sparks connect TOOL`: ready-to-paste client configuration built from the live model list.

The pasteable part goes to stdout (so `sparks connect opencode > opencode.json` works); how to
use it goes to stderr or into comments. The key is printed only with `--show-key`.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import click

from sparks.cli.connect_snippets import (  # noqa: F401 (tests import some from here)
    RENDERERS,
    TOOLS,
    Connection,
    base_url_for,
    client_models,
    render_opencode,
)
from sparks.cli.options import config_option, fail, load_or_exit
from sparks.config import Config

# --- the command ---------------------------------------------------------------------------


async def _model_entries(config: Config) -> tuple[list[dict[str, Any]], list[str]]:
    """The list `sparks models` shows: configured models plus one discovery round."""
    from sparks.backends.catalog import Catalog
    from sparks.backends.upstream import Upstreams

    catalog = Catalog(config)
    async with Upstreams.new_session() as session:
        await catalog.refresh(Upstreams(config.backends, session))
    unreachable = [
        f"backend {name}: {error} (its models are missing above)"
        for name, error in catalog.discovery_errors.items()
    ]
    return catalog.entries(), [*catalog.table.problems, *unreachable]


@click.command("connect")
@click.argument("tool", type=click.Choice(TOOLS, case_sensitive=False))
@config_option
@click.option("--show-key", is_flag=True, help="Put the key itself into the output.")
@click.option("--base-url", metavar="URL", help="Base URL clients use (default: from bind).")
def connect(tool: str, config_path: str | None, show_key: bool, base_url: str | None) -> None:
    """Print ready-to-paste configuration for TOOL (opencode, continue, aider, cline, cursor, codex,
    claude-code, env)."""
    from sparks.keys import find_main_key

    config = load_or_exit(config_path)
    entries, problems = asyncio.run(_model_entries(config))
    config_args = f" --config {shlex.quote(config_path)}" if config_path else ""
    key = None
    if show_key:
        try:
            found = find_main_key(config)
        except PermissionError as exc:
            fail(str(exc), 1)
            return
        if found is None:
            fail("no key yet: run `sparks serve` once or `sparks key generate`", 1)
            return
        key = found.key
    conn = Connection(
        base_url=(base_url or base_url_for(config)).rstrip("/"),
        models=client_models(entries, config),
        config_args=config_args,
        key=key,
    )
    text, hints = RENDERERS[tool.lower()](conn)
    click.echo(text)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if all(m.is_ghost for m in conn.models):
        click.echo(
            "warning: no backend models found; configure or start a backend (`sparks init`, "
            "`sparks doctor`)",
            err=True,
        )
    if hints:
        click.echo(hints, err=True)
    if show_key:
        click.echo("note: this output contains your key; keep it out of git and chats", err=True)
