"""`run()`: the startup rules of `sparks serve` (what may be served, on which address, with
which keys), the banner, and the event loop. The CLI only gathers arguments and calls it."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from typing import Any

import click

from sparks import __version__
from sparks.auth import Credentials
from sparks.config import Config, ConfigError, ignored_cwd_config, split_bind
from sparks.errors import StartupError
from sparks.security import is_loopback_host
from sparks.server.app import create_app, serve_until_stopped, with_bind
from sparks.server.state import CATALOG, OBSERVER


def run(
    config: Config,
    *,
    bind: str | None = None,
    allow_nonlocal: bool = False,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT/SIGTERM; raises StartupError for anything that stops a start."""
    from sparks.ghosts.definitions import ghost_specs
    from sparks.ghosts.tools import shell_unavailable_reason, unjailed_shell_warning
    from sparks.keys import client_keys, ensure_main_key
    from sparks.observe.observer import events_path

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        specs = ghost_specs(config, protected=[events_path(config.observer)])
    except ConfigError as exc:
        raise StartupError(f"invalid config: {exc}", 2) from None
    if not config.openai_api.enabled:
        raise StartupError(f"openai_api.enabled is false in {config.source}: nothing to serve", 2)
    if bind:
        try:
            split_bind(bind)
        except ValueError as exc:
            raise StartupError(f"--bind: {exc}", 2) from None
    config = with_bind(config, bind)
    api = config.openai_api
    if not is_loopback_host(api.host) and not allow_nonlocal:
        raise StartupError(
            f"refusing to bind non-loopback address {api.host!r}: anyone on the network could "
            "reach your backends and ghosts. Pass --allow-nonlocal if you mean it.",
            2,
        )
    try:
        main_key, generated = ensure_main_key(config)
        clients = client_keys()
    except PermissionError as exc:
        raise StartupError(str(exc), 1) from None
    credentials = Credentials(
        [(main_key.key, api.principal), *((c.key, c.principal) for c in clients)]
    )
    console = sys.stderr if config.observer.console else None
    app = create_app(config, credentials, console=console)

    def banner(running_app: Any) -> None:
        catalog = running_app[CATALOG]
        note = " (generated now)" if generated else ""
        click.echo(f"Sparks {__version__} serving http://{api.bind}/v1")
        click.echo(f"  config:  {config.source}")
        if config.path is None and (ignored := ignored_cwd_config()):
            click.echo(f"  warning: {ignored}")
        click.echo(f"  key:     {main_key.source}{note}  (print it with `sparks key show`)")
        if clients:
            click.echo(f"  clients: {', '.join(c.principal for c in clients)}")
        click.echo(f"  models:  {', '.join(e['id'] for e in catalog.entries())}")
        click.echo(f"  events:  {running_app[OBSERVER].path}")
        for name, error in catalog.discovery_errors.items():
            click.echo(f"  warning: backend {name} did not list its models ({error})")
        for problem in catalog.table.problems:
            click.echo(f"  warning: {problem}")
        for spec in specs:
            for note in (shell_unavailable_reason(spec), unjailed_shell_warning(spec)):
                if note:
                    click.echo(f"  warning: ghost {spec.name}: {note}")
        sys.stdout.flush()

    try:
        run_event_loop(
            serve_until_stopped(app, api.host, api.port, api.shutdown_grace_s, on_started=banner)
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{api.bind} is already in use; is another sparks running? (try --bind)", 1
            ) from None
        raise StartupError(f"cannot listen on {api.bind}: {exc.strerror or exc}", 1) from None
    except KeyboardInterrupt:
        pass


def run_event_loop(main_coroutine: Any) -> None:
    """uvloop (a dependency except on Windows; measured in docs/performance.md),
    else asyncio's own loop. SPARKS_EVENT_LOOP=asyncio forces the latter."""
    if os.environ.get("SPARKS_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main_coroutine)
            return
    asyncio.run(main_coroutine)
