"""`sparks ui`: ask the running daemon for a one-time login code and open the dashboard."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import webbrowser

import click

from sparks.cli.options import config_option, fail, load_or_exit

REQUEST_TIMEOUT_S = 5.0
UNSPECIFIED_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def daemon_url(bind_host: str, port: int) -> str:
    """Where this machine reaches the daemon (a wildcard bind is reached on loopback)."""
    host = UNSPECIFIED_HOSTS.get(bind_host, bind_host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def request_login_path(base: str, key: str) -> str:
    """POST /ui/login-code with the main key; returns the page path carrying the code."""
    request = urllib.request.Request(
        base + "/ui/login-code",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        # no proxy: the daemon is on this machine, whatever http_proxy says
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        fail(f"{base} refused a login code ({exc.code}): {message}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"no Sparks daemon answers at {base} ({reason}); start it with `sparks serve`")
    except ValueError:
        fail(f"{base} did not answer like Sparks (is another server on that port?)")
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.startswith("/ui/"):
        fail(f"{base} did not answer like Sparks (is another server on that port?)")
    return path


@click.command("ui")
@config_option
@click.option("--no-open", is_flag=True, help="Print the URL only; do not open a browser.")
def ui(config_path: str | None, no_open: bool) -> None:
    """Open the dashboard: prints a one-time login URL (valid for a minute, once)."""
    from sparks.keys import find_main_key

    config = load_or_exit(config_path, detect=False)
    try:
        main_key = find_main_key(config)
    except PermissionError as exc:
        fail(str(exc))
    if main_key is None:
        fail("no main key found (env, keyring or key file); run `sparks serve` or `sparks init`")
    api = config.openai_api
    base = daemon_url(api.host, api.port)
    url = base + request_login_path(base, main_key.key)
    click.echo(url)
    click.echo("(a one-time link: it works once, within a minute)", err=True)
    if not no_open and not webbrowser.open(url):
        click.echo("could not open a browser; paste the link above into one", err=True)
