"""What every command shares: the `--config` / `--json` options, `fail()`, and loading config
with the one ConfigError handler (exit 2 naming the key and file)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from sparks.config import Config, ConfigError, load_config

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


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"sparks: {message}", err=True)
    sys.exit(code)


def config_failure(exc: ConfigError) -> NoReturn:
    fail(f"invalid config: {exc}", 2)


def load_or_exit(config_path: str | None, detect: bool = True) -> Config:
    """Load config (exit 2 naming the key on error); detect backends when none are configured."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        config_failure(exc)
    if detect and not config.backends:
        from sparks.backends.detect import apply_detected, detect_backends

        config = apply_detected(config, asyncio.run(detect_backends()))
    return config
