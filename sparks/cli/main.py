"""The `sparks` command line: gathers arguments, loads config, calls into the package."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

import click

from sparks import __version__
from sparks.cli.activity import activity
from sparks.cli.connect import connect
from sparks.cli.events import events
from sparks.cli.keys import key
from sparks.cli.options import config_failure, config_option, fail, json_option, load_or_exit
from sparks.cli.ui import ui
from sparks.config import Config, ConfigError, find_config_path, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparks")
def main() -> None:
    """Sparks: one local OpenAI-compatible base URL for ghosts and upstream backends."""


@main.command()
@config_option
@click.option("--bind", metavar="HOST:PORT", help="Override openai_api.bind.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@click.option("--allow-nonlocal", is_flag=True, help="Permit binding a non-loopback address.")
def serve(config_path: str | None, bind: str | None, log_level: str, allow_nonlocal: bool) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    from sparks.errors import StartupError
    from sparks.server import run

    config = load_or_exit(config_path)
    try:
        run(config, bind=bind, allow_nonlocal=allow_nonlocal, log_level=log_level)
    except StartupError as exc:
        fail(str(exc), exc.exit_code)


@main.command()
@config_option
@json_option
def models(config_path: str | None, as_json: bool) -> None:
    """The advertised model list, as the server would serve it."""
    config = load_or_exit(config_path)
    catalog = asyncio.run(_discovered_catalog(config))
    entries = catalog.entries()
    if as_json:
        click.echo(json.dumps({"object": "list", "data": entries}, indent=2))
        return
    for entry in entries:
        meta = entry["sparks"]
        context = entry["context_length"] or "-"
        click.echo(f"{entry['id']:<40} {meta['kind']:<10} ctx={context}")
    for problem in catalog.table.problems:
        click.echo(f"warning: {problem}", err=True)


async def _discovered_catalog(config: Config) -> Any:
    from sparks.backends.catalog import Catalog
    from sparks.backends.upstream import Upstreams

    catalog = Catalog(config)
    async with Upstreams.new_session() as session:
        await catalog.refresh(Upstreams(config.backends, session))
    return catalog


@main.command()
@config_option
@json_option
@click.argument("model")
def route(config_path: str | None, as_json: bool, model: str) -> None:
    """Dry run: how MODEL would be routed."""
    from sparks.errors import SparksError

    config = load_or_exit(config_path)
    catalog = asyncio.run(_discovered_catalog(config))
    try:
        resolved = catalog.table.resolve(model)
    except SparksError as exc:
        if as_json:
            click.echo(json.dumps(exc.body(), indent=2))
        else:
            click.echo(f"{model}: {exc.status} {exc.code}: {exc.message}")
        sys.exit(1)
    chain = [
        {
            "target": t.sparks_id,
            "kind": t.kind,
            "backend": t.backend,
            "upstream_model": t.upstream_model,
            "ghost": t.ghost,
            "local": t.local,
        }
        for t in resolved.chain
    ]
    if as_json:
        click.echo(
            json.dumps(
                {"model": model, "kind": resolved.kind, "route": resolved.label, "chain": chain},
                indent=2,
            )
        )
        return
    click.echo(f"{model} → {resolved.label}" + ("  (loopback only)" if resolved.local_only else ""))
    if resolved.kind == "classify":
        how = f"LLM {config.classifier.model}" if config.classifier.model else "keyword heuristic"
        click.echo(
            f"  the classifier ({how}) picks one of: " + ", ".join(g.name for g in config.ghosts)
        )
    for number, step in enumerate(chain, start=1):
        where = (
            f"ghost {step['ghost']}"
            if step["ghost"]
            else (f"backend {step['backend']}, upstream model {step['upstream_model']}")
        )
        click.echo(f"  {number}. {step['target']}  ({where})")


@main.command()
@config_option
def ghosts(config_path: str | None) -> None:
    """List ghosts: name, description, model, tools, workspace."""
    from sparks.ghosts.definitions import ghost_specs
    from sparks.observe.observer import events_path

    config = load_or_exit(config_path, detect=False)
    try:
        specs = ghost_specs(config, protected=[events_path(config.observer)])
    except ConfigError as exc:
        config_failure(exc)
    for spec in specs:
        click.echo(f"sparks/{spec.name}")
        click.echo(f"  {spec.description}")
        click.echo(f"  model:     {spec.model or '(first available backend model)'}")
        click.echo(f"  tools:     {', '.join(spec.tools)}")
        click.echo(f"  workspace: {spec.workspace}" + ("  (read-only)" if spec.read_only else ""))


@main.command()
@config_option
@click.option("--path", "target", metavar="PATH", help="Where to write (default: user config dir).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(config_path: str | None, target: str | None, force: bool) -> None:
    """Write a commented config.toml with detected backends; ensure a key exists."""
    from pathlib import Path

    from sparks.backends.detect import detect_backends
    from sparks.cli.init_config import render_config
    from sparks.config import default_config_dir
    from sparks.keys import ensure_main_key

    path = Path(target or config_path or default_config_dir() / "config.toml")
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to overwrite", 1)
    click.echo("detecting backends (env keys, loopback ports 11434 1234 8080 8000)…", err=True)
    detected = asyncio.run(detect_backends())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(render_config(detected), encoding="utf-8")
    click.echo(f"wrote {path}")
    for backend in detected:
        click.echo(f"  backend {backend.name}: {backend.base_url}")
    if not detected:
        click.echo("  no backends detected; edit [backends] (or run scripts/fake_upstream.py)")
    config = load_or_exit(str(path), detect=False)
    key, generated = ensure_main_key(config)
    click.echo(f"key: {key.source}" + (" (generated now)" if generated else ""))


@main.command()
@config_option
@json_option
def doctor(config_path: str | None, as_json: bool) -> None:
    """Check config, keys, bind address, backends and ghosts; exit 1 if any check fails."""
    from sparks.cli.doctor import run_checks

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if as_json:
            click.echo(json.dumps([{"check": "config", "ok": False, "detail": str(exc)}]))
        else:
            click.echo(f"FAIL config: {exc}")
        sys.exit(2)
    checks = asyncio.run(run_checks(config, find_config_path(config_path)))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        for check in checks:
            mark = "ok  " if check.ok else ("warn" if check.warn_only else "FAIL")
            click.echo(f"{mark} {check.check}: {check.detail}")
    if any(not c.ok and not c.warn_only for c in checks):
        sys.exit(1)


main.add_command(key)
main.add_command(connect)
main.add_command(events)
main.add_command(activity)
main.add_command(ui)
