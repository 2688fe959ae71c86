"""`sparks connect TOOL`: ready-to-paste client configuration built from the live model list.

The pasteable part goes to stdout (so `sparks connect opencode > opencode.json` works); how to
use it goes to stderr or into comments. The key is printed only with `--show-key`.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click

from sparks.cli.options import config_option, fail, load_or_exit
from sparks.config import Config
from sparks.security import is_loopback_host

TOOLS = ("opencode", "continue", "aider", "cline", "cursor", "env")
KEY_ENV = "SPARKS_API_KEY"  # the variable the opencode and Continue snippets read the key from
OPENCODE_KEY_REF = "{env:SPARKS_API_KEY}"
CONTINUE_KEY_REF = "${{ secrets.SPARKS_API_KEY }}"
MAX_OUTPUT_TOKENS = 8192  # a conservative default; clients send it as max_tokens
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class ClientModel:
    id: str
    kind: str  # classifier | ghost | alias | backend
    context_length: int | None
    supports_tools: bool

    @property
    def takes_client_tools(self) -> bool:
        """Ghosts (and the classifier picking one) refuse a request's `tools`; agents send them."""
        return self.kind in ("alias", "backend")

    @property
    def output_limit(self) -> int | None:
        if not self.context_length:
            return None
        return max(1, min(MAX_OUTPUT_TOKENS, self.context_length // 4))


@dataclass(frozen=True)
class Connection:
    """Everything a snippet needs: where Sparks listens, what it serves, how to get the key."""

    base_url: str
    models: tuple[ClientModel, ...]
    config_args: str = ""  # e.g. " --config cfg.toml", repeated in the commands we suggest
    key: str | None = None  # the literal key, only with --show-key

    @property
    def key_command(self) -> str:
        return "sparks key show" + self.config_args

    @property
    def agent_models(self) -> list[ClientModel]:
        return [m for m in self.models if m.takes_client_tools]

    @property
    def default_model(self) -> ClientModel | None:
        """The first backend or alias model: what a coding agent should start with."""
        agents = self.agent_models
        return agents[0] if agents else (self.models[0] if self.models else None)

    def key_or(self, reference: str) -> str:
        """The key with --show-key, else `reference`: an env-var reference or how to get it."""
        return self.key if self.key is not None else reference


def client_models(entries: list[dict[str, Any]]) -> tuple[ClientModel, ...]:
    """`/v1/models` entries (Catalog.entries()) → what the snippets need."""
    return tuple(
        ClientModel(
            id=e["id"],
            kind=e["sparks"]["kind"],
            context_length=e.get("context_length"),
            supports_tools=bool(e.get("supports_tools")),
        )
        for e in entries
    )


def base_url_for(config: Config) -> str:
    api = config.openai_api
    host = "127.0.0.1" if api.host in WILDCARD_HOSTS else api.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{api.port}/v1"


# --- one renderer per tool: (stdout, hints for stderr) -----------------------------------


def render_opencode(conn: Connection) -> tuple[str, str]:
    models: dict[str, Any] = {}
    for model in conn.agent_models:
        entry: dict[str, Any] = {"name": model.id}
        if model.context_length:
            entry["limit"] = {"context": model.context_length, "output": model.output_limit}
        models[model.id] = entry
    document: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "sparks": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Sparks",
                "options": {
                    "baseURL": conn.base_url,
                    "apiKey": conn.key_or(OPENCODE_KEY_REF),
                },
                "models": models,
            }
        },
    }
    default = conn.default_model
    if default is not None and default.takes_client_tools:
        document["model"] = f"sparks/{default.id}"
    hints = [
        "Save as opencode.json in your project (or merge into ~/.config/opencode/opencode.json).",
    ]
    if conn.key is None:
        hints.append(f'Then: export {KEY_ENV}="$({conn.key_command})"')
    hints.append("Run: opencode  (or: opencode run --model sparks/MODEL 'your task')")
    hints.append(_ghost_note("OpenCode sends its own tools, which ghosts refuse"))
    return json.dumps(document, indent=2), "\n".join(hints)


def render_continue(conn: Connection) -> tuple[str, str]:
    api_key = conn.key_or(CONTINUE_KEY_REF)
    lines = [
        "# Continue: merge the models below into ~/.continue/config.yaml.",
    ]
    if conn.key is None:
        lines.append(
            f'# The key comes from ~/.continue/.env: echo "{KEY_ENV}=$({conn.key_command})" '
            ">> ~/.continue/.env"
        )
    lines.append("# Ghosts (sparks/...) refuse tools: use them in Chat mode, not Agent mode.")
    lines += ["name: Sparks", "version: 1.0.0", "schema: v1", "models:"]
    for model in conn.models:
        roles = ["chat", "edit", "apply"] if model.takes_client_tools else ["chat"]
        lines += [
            f"  - name: {_q(model.id + ' (Sparks)')}",
            "    provider: openai",
            f"    model: {_q(model.id)}",
            f"    apiBase: {_q(conn.base_url)}",
            f"    apiKey: {_q(api_key)}",
            f"    roles: [{', '.join(roles)}]",
        ]
        if model.takes_client_tools and model.supports_tools:
            lines.append("    capabilities: [tool_use]")
        if model.context_length:
            lines += [
                "    defaultCompletionOptions:",
                f"      contextLength: {model.context_length}",
            ]
    return "\n".join(lines), ""


def render_aider(conn: Connection) -> tuple[str, str]:
    metadata = {
        f"openai/{m.id}": {
            "max_input_tokens": m.context_length,
            "max_output_tokens": m.output_limit,
            "max_tokens": m.output_limit,
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "litellm_provider": "openai",
            "mode": "chat",
        }
        for m in conn.agent_models
        if m.context_length
    }
    default = conn.default_model
    lines = [
        "# Aider talks to Sparks through litellm's OpenAI provider: prefix model ids with openai/.",
        f"export OPENAI_API_BASE={shlex.quote(conn.base_url)}",
        _export("OPENAI_API_KEY", conn),
    ]
    if metadata:
        lines += [
            "# Context windows: aider reads .aider.model.metadata.json from your home directory,",
            "# the git root or the current directory.",
            "cat > .aider.model.metadata.json <<'EOF'",
            json.dumps(metadata, indent=2),
            "EOF",
        ]
    lines.append("# Models: " + ", ".join(f"openai/{m.id}" for m in conn.agent_models))
    if default is not None:
        lines.append(f"aider --model {shlex.quote('openai/' + default.id)}")
    return "\n".join(lines), _ghost_note("aider needs answers in its edit format")


def render_cline(conn: Connection) -> tuple[str, str]:
    key = conn.key_or(f"(paste the output of `{conn.key_command}`)")
    default = conn.default_model
    lines = [
        "Cline → Settings → API Configuration:",
        "  API Provider:  OpenAI Compatible",
        f"  Base URL:      {conn.base_url}",
        f"  API Key:       {key}",
        f"  Model ID:      {default.id if default else '(one of the models below)'}",
        "  Model Configuration (per model):",
    ]
    for model in conn.agent_models:
        if model.context_length:
            limits = f"Context Window Size {model.context_length}"
            limits += f", Max Output Tokens {model.output_limit}"
        else:
            limits = "context window unknown: keep Cline's default"
        lines.append(f"    {model.id}: {limits}")
    if not conn.agent_models:
        lines.append("    (no backend models: configure a backend, then run this again)")
    lines.append(_ghost_note("Cline runs its own tool loop"))
    return "\n".join(lines), ""


def render_cursor(conn: Connection) -> tuple[str, str]:
    host = urlsplit(conn.base_url).hostname or ""
    local = is_loopback_host(host)
    override = "https://<your-tunnel-host>/v1" if local else conn.base_url
    key = conn.key_or("the client key printed by step 1")
    lines = [
        "Cursor cannot reach a Sparks on this machine by itself."
        if local
        else f"Cursor via {conn.base_url} (a tunnel to Sparks, presumably).",
        "",
        "Cursor sends requests for a custom OpenAI base URL from its own servers, not from your",
        "machine, so a loopback URL (127.0.0.1, localhost) is unreachable for them. Making it",
        "work needs a tunnel you trust (e.g. cloudflared or ngrok) from a public HTTPS name to",
        "Sparks, and that exposes Sparks (your backends, the budgets of their keys and, through",
        "ghosts, this machine's files) to anyone who learns the URL and a key. If you do it:",
        "",
        "  1. sparks key generate --client cursor   (a key you can revoke; events show 'cursor')",
        '  2. add the tunnel host to openai_api.allowed_hosts (e.g. ["abc.trycloudflare.com"])',
        "     and restart `sparks serve`",
        "  3. Cursor → Settings → Models → OpenAI API Key:",
        f"       API Key:                   {key}",
        f"       Override OpenAI Base URL:  {override}",
        "  4. add custom model names: " + ", ".join(m.id for m in conn.agent_models),
        "",
        "Stop the tunnel when you are done; `sparks events --follow` shows every request.",
    ]
    if local:
        origin = conn.base_url.removesuffix("/v1")
        lines.insert(-1, f"(Sparks listens on {origin}; point the tunnel there.)")
    return "\n".join(lines), ""


def render_env(conn: Connection) -> tuple[str, str]:
    lines = [
        f'# For scripts and the openai SDKs: eval "$(sparks connect env{conn.config_args})"',
        f"export OPENAI_BASE_URL={shlex.quote(conn.base_url)}",
        f"export OPENAI_API_BASE={shlex.quote(conn.base_url)}  # older clients, litellm",
        _export("OPENAI_API_KEY", conn),
    ]
    if conn.models:
        lines.append("# models: " + ", ".join(m.id for m in conn.models))
    return "\n".join(lines), ""


RENDERERS: dict[str, Callable[[Connection], tuple[str, str]]] = {
    "opencode": render_opencode,
    "continue": render_continue,
    "aider": render_aider,
    "cline": render_cline,
    "cursor": render_cursor,
    "env": render_env,
}


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(text)


def _export(name: str, conn: Connection) -> str:
    if conn.key is not None:
        return f"export {name}={shlex.quote(conn.key)}"
    return f'export {name}="$({conn.key_command})"'


def _ghost_note(reason: str) -> str:
    return (
        f"Ghosts (sparks, sparks/coder, ...) are left out: {reason}; "
        "use backend models or aliases here."
    )


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
    """Print ready-to-paste configuration for TOOL (opencode, continue, aider, cline, cursor, env)."""
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
        models=client_models(entries),
        config_args=config_args,
        key=key,
    )
    text, hints = RENDERERS[tool.lower()](conn)
    click.echo(text)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if not conn.agent_models:
        click.echo(
            "warning: no backend models found; configure or start a backend (`sparks init`, "
            "`sparks doctor`)",
            err=True,
        )
    if hints:
        click.echo(hints, err=True)
    if show_key:
        click.echo("note: this output contains your key; keep it out of git and chats", err=True)
