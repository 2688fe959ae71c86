"""`sparks key …`: manage the main key, named client keys and backend keys."""

from __future__ import annotations

import sys

import click

from sparks import keys
from sparks.cli.options import config_option, fail, load_or_exit


def _one_of(client: str | None, backend: str | None) -> None:
    if client and backend:
        fail("use --client or --backend, not both", 2)


@click.group()
def key() -> None:
    """Manage keys (main key, --client NAME keys, --backend NAME keys)."""


@key.command()
@config_option
@click.option("--client", metavar="NAME", help="A named client key; it authenticates as NAME.")
def generate(config_path: str | None, client: str | None) -> None:
    """Store a new random key and print it once."""
    config = load_or_exit(config_path, detect=False)
    new_key = keys.generate_key()
    if client:
        where = keys.store_client_key(client, new_key)
        click.echo(new_key)
        click.echo(f"stored client key {client!r} in {where}; restart `sparks serve`", err=True)
        return
    env = config.openai_api.api_key_env
    where = keys.store_main_key(new_key)
    click.echo(new_key)
    click.echo(f"stored in {where}", err=True)
    if env and env in __import__("os").environ:
        click.echo(f"note: ${env} is set and takes precedence over the stored key", err=True)


@key.command(name="set")
@config_option
@click.option("--client", metavar="NAME")
@click.option("--backend", metavar="NAME", help="Store the API key for backend NAME.")
def set_key(config_path: str | None, client: str | None, backend: str | None) -> None:
    """Store a key read from stdin (or a hidden prompt)."""
    _one_of(client, backend)
    load_or_exit(config_path, detect=False)
    if sys.stdin.isatty():
        value = click.prompt("key", hide_input=True).strip()
    else:
        value = sys.stdin.readline().strip()
    if not value:
        fail("no key given", 2)
    try:
        if backend:
            where = keys.store_backend_key(backend, value)
        elif client:
            where = keys.store_client_key(client, value)
        else:
            where = keys.store_main_key(value)
    except RuntimeError as exc:
        fail(str(exc), 1)
        return
    click.echo(f"stored in {where}")


@key.command()
@config_option
@click.option("--client", metavar="NAME")
def show(config_path: str | None, client: str | None) -> None:
    """Print the key in effect (this is your own machine)."""
    config = load_or_exit(config_path, detect=False)
    found = keys.find_client_key(client) if client else keys.find_main_key(config)
    if found is None:
        fail("no key found; run `sparks key generate`", 1)
        return
    click.echo(found.key)


@key.command()
@config_option
@click.option("--client", metavar="NAME")
@click.option("--backend", metavar="NAME")
def delete(config_path: str | None, client: str | None, backend: str | None) -> None:
    """Remove a stored key."""
    _one_of(client, backend)
    load_or_exit(config_path, detect=False)
    if backend:
        removed = keys.delete_backend_key(backend)
    elif client:
        removed = keys.delete_client_key(client)
    else:
        removed = keys.delete_main_key()
    if not removed:
        fail("nothing stored to delete", 1)
    click.echo("deleted from " + ", ".join(removed))


@key.command()
@config_option
@click.option("--backend", metavar="NAME")
def where(config_path: str | None, backend: str | None) -> None:
    """Say which key source is in effect (never the key)."""
    config = load_or_exit(config_path, detect=False)
    if backend:
        if backend not in config.backends:
            fail(f"no backend {backend!r} in {config.source}", 2)
        found = keys.find_backend_key(config.backends[backend])
        status = keys.backend_key_status(config.backends[backend])
        click.echo(found.source if found else f"no key ({status})")
        return
    try:
        found = keys.find_main_key(config)
    except PermissionError as exc:  # a key file readable by others: refused, never used
        fail(str(exc), 2)
    click.echo(found.source if found else "no key yet; `sparks serve` will generate one")
    click.echo(
        f"keyring backend: {keys.keyring_backend_name()}"
        + ("" if keys.keyring_usable() else " (not usable; the key file is used)")
    )
    names = keys.client_names()
    if names:
        click.echo("client keys: " + ", ".join(names))
