"""The `sparks` command line: gathers arguments, loads config, calls into the package."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .config import Config, ConfigError, find_config_path, load_config, split_bind
from .security import is_loopback_host

F = Callable[..., Any]


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        metavar="PATH",
        help="config.toml to use (default: $SPARKS_CONFIG, ./config.toml, user config dir).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"sparks: {message}", err=True)
    sys.exit(code)


def load_or_exit(config_path: str | None, detect: bool = True) -> Config:
    """Load config (exit 2 naming the key on error); detect backends when none are configured."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(f"invalid config: {exc}", 2)
        raise  # unreachable; for type checkers
    if detect and not config.backends:
        from .detect import apply_detected, detect_backends

        config = apply_detected(config, asyncio.run(detect_backends()))
    return config


def run_event_loop(main_coroutine: Any) -> None:
    """uvloop when installed (`pip install 'sparks[fast]'`; measured in docs/performance.md),
    else asyncio's own loop. SPARKS_EVENT_LOOP=asyncio forces the latter."""
    import os

    if os.environ.get("SPARKS_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main_coroutine)
            return
    asyncio.run(main_coroutine)


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
    from .auth import Credentials
    from .keys import client_keys, ensure_main_key
    from .server import create_app, serve_until_stopped

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = load_or_exit(config_path)
    try:
        from .ghosts.definitions import ghost_specs

        ghost_specs(config)
    except ConfigError as exc:
        fail(f"invalid config: {exc}", 2)
    api = config.openai_api
    if not api.enabled:
        fail(f"openai_api.enabled is false in {config.source}: nothing to serve", 2)
    if bind:
        try:
            split_bind(bind)
        except ValueError as exc:
            fail(f"--bind: {exc}", 2)
        api = dataclasses.replace(api, bind=bind)
        config = dataclasses.replace(config, openai_api=api)
    if not is_loopback_host(api.host) and not allow_nonlocal:
        fail(
            f"refusing to bind non-loopback address {api.host!r}: anyone on the network could "
            "reach your backends and ghosts. Pass --allow-nonlocal if you mean it.",
            2,
        )
    if api.host not in api.allowed_hosts and not is_loopback_host(api.host):
        api = dataclasses.replace(api, allowed_hosts=(*api.allowed_hosts, api.host))
        config = dataclasses.replace(config, openai_api=api)
    try:
        main_key, generated = ensure_main_key(config)
        clients = client_keys()
    except PermissionError as exc:
        fail(str(exc), 1)
        raise
    credentials = Credentials(
        [(main_key.key, api.principal), *((c.key, c.principal) for c in clients)]
    )
    console = sys.stderr if config.observer.console else None
    app = create_app(config, credentials, console=console)

    def banner(running_app: Any) -> None:
        from .state import CATALOG, OBSERVER

        models = [e["id"] for e in running_app[CATALOG].entries()]
        note = " (generated now)" if generated else ""
        click.echo(f"Sparks {__version__} serving http://{api.bind}/v1")
        click.echo(f"  config:  {config.source}")
        click.echo(f"  key:     {main_key.source}{note}  (print it with `sparks key show`)")
        if clients:
            click.echo(f"  clients: {', '.join(c.principal for c in clients)}")
        click.echo(f"  models:  {', '.join(models)}")
        click.echo(f"  events:  {running_app[OBSERVER].path}")
        for name, error in running_app[CATALOG].discovery_errors.items():
            click.echo(f"  warning: backend {name} did not list its models ({error})")
        for problem in running_app[CATALOG].table.problems:
            click.echo(f"  warning: {problem}")
        sys.stdout.flush()

    try:
        run_event_loop(
            serve_until_stopped(app, api.host, api.port, api.shutdown_grace_s, on_started=banner)
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"{api.bind} is already in use; is another sparks running? (try --bind)", 1)
        fail(f"cannot listen on {api.bind}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        pass


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
    from .catalog import Catalog
    from .upstream import Upstreams

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
    from .errors import SparksError

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
    from .ghosts.definitions import ghost_specs

    config = load_or_exit(config_path, detect=False)
    try:
        specs = ghost_specs(config)
    except ConfigError as exc:
        fail(f"invalid config: {exc}", 2)
        return
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

    from .config import default_config_dir
    from .detect import detect_backends
    from .init_config import render_config
    from .keys import ensure_main_key

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
    from .doctor import run_checks

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


from .activity_cli import activity  # noqa: E402
from .cli_keys import key  # noqa: E402
from .connect import connect  # noqa: E402
from .events_cli import events  # noqa: E402

main.add_command(key)
main.add_command(connect)
main.add_command(events)
main.add_command(activity)
