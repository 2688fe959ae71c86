"""The snippets `sparks connect` prints: one renderer per client tool, from the model list.

Plain models (aliases, backend models) come first and ghosts after in every snippet, because
several tools use the first model they are given (SPEC §5.1, issue 14).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sparks.config import Config
from sparks.security import is_loopback_host

TOOLS = ("opencode", "continue", "aider", "cline", "cursor", "codex", "claude-code", "env")
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
    refuses_tools: bool = False  # a ghost with client_tools = "reject" (or `sparks` picking one)
    max_output_tokens: int | None = None  # from the backend's model list, when it says

    @property
    def is_ghost(self) -> bool:
        return self.kind in ("classifier", "ghost")

    @property
    def takes_client_tools(self) -> bool:
        """Agents send `tools` on every request: backends and aliases take them, and ghosts
        merge them with their own unless configured with client_tools = "reject"."""
        return not self.refuses_tools

    @property
    def output_limit(self) -> int | None:
        if not self.context_length:
            return None
        limit = max(1, min(MAX_OUTPUT_TOKENS, self.context_length // 4))
        return min(limit, self.max_output_tokens) if self.max_output_tokens else limit


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
    def ordered_models(self) -> list[ClientModel]:
        """Aliases and backend models first, ghosts after: tools that start with their first
        model (`cn -p`, a pasted default) start with a plain model."""
        return sorted(self.models, key=lambda m: m.is_ghost)

    @property
    def agent_models(self) -> list[ClientModel]:
        return [m for m in self.ordered_models if m.takes_client_tools]

    @property
    def default_model(self) -> ClientModel | None:
        """The first alias or backend model: what a coding agent should start with."""
        ordered = self.ordered_models
        plain = [m for m in ordered if not m.is_ghost]
        return (plain or self.agent_models or ordered or [None])[0]

    def key_or(self, reference: str) -> str:
        """The key with --show-key, else `reference`: an env-var reference or how to get it."""
        return self.key if self.key is not None else reference


def client_models(
    entries: list[dict[str, Any]], config: Config | None = None
) -> tuple[ClientModel, ...]:
    """`/v1/models` entries (Catalog.entries()) → what the snippets need; `config` says which
    ghosts refuse a client's tools."""
    refusing: set[str] = set()
    if config is not None:
        default = config.ghost_defaults.client_tools
        refusing = {
            f"sparks/{g.name}" for g in config.ghosts if (g.client_tools or default) == "reject"
        }
        if refusing:
            refusing.add("sparks")  # it may pick one of them
    return tuple(
        ClientModel(
            id=e["id"],
            kind=e["sparks"]["kind"],
            context_length=e.get("context_length"),
            supports_tools=bool(e.get("supports_tools")),
            refuses_tools=e["id"] in refusing,
            max_output_tokens=e.get("max_output_tokens"),
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
    hints.append(_ghost_note())
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
    lines.append(
        "# The first model is the default (`cn -p` uses it); ghosts (sparks/...) come after."
    )
    lines += ["name: Sparks", "version: 1.0.0", "schema: v1", "models:"]
    for model in conn.ordered_models:
        roles = ["chat"] if model.is_ghost else ["chat", "edit", "apply"]
        lines += [
            f"  - name: {_q(model.id + ' (Sparks)')}",
            "    provider: openai",
            f"    model: {_q(model.id)}",
            f"    apiBase: {_q(conn.base_url)}",
            f"    apiKey: {_q(api_key)}",
            f"    roles: [{', '.join(roles)}]",
        ]
        if model.takes_client_tools and (model.supports_tools or model.is_ghost):
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
    return "\n".join(lines), _ghost_note()


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
    if all(m.is_ghost for m in conn.agent_models):
        lines.append("    (no backend models: configure a backend, then run this again)")
    lines.append(_ghost_note())
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
        lines.append("# models: " + ", ".join(m.id for m in conn.ordered_models))
    return "\n".join(lines), ""


def render_codex(conn: Connection) -> tuple[str, str]:
    """Codex CLI speaks only the Responses API (`wire_api = "responses"`, docs/responses.md)."""
    model = f"model = {_q(conn.default_model.id)}\n" if conn.default_model else ""
    return (
        f"# Codex CLI: merge into ~/.codex/config.toml; then {_export(KEY_ENV, conn)}\n{model}"
        f'model_provider = "sparks"\n\n[model_providers.sparks]\nname = "Sparks"\nbase_url = '
        f'{_q(conn.base_url)}\nenv_key = "{KEY_ENV}"\nwire_api = "responses"\n# models: '
        + ", ".join(m.id for m in conn.ordered_models)
    ), "Run: codex  (or: codex exec -m MODEL 'your task')"


def render_claude_code(conn: Connection) -> tuple[str, str]:
    """Claude Code speaks the Anthropic Messages API (docs/messages.md) from the daemon's root;
    every model it would pick by itself (opus, sonnet, haiku, subagents) is a Sparks id."""
    default = conn.default_model
    model = shlex.quote(default.id if default else "sparks")
    lines = [
        "# Claude Code through Sparks' Anthropic Messages front (docs/messages.md)",
        f"export ANTHROPIC_BASE_URL={shlex.quote(conn.base_url.removesuffix('/v1'))}",
        _export("ANTHROPIC_AUTH_TOKEN", conn),
        *(f"export {name}={model}" for name in CLAUDE_MODEL_VARS),
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1  # no telemetry or update checks",
    ]
    if default is not None and default.output_limit:
        lines.append(f"export CLAUDE_CODE_MAX_OUTPUT_TOKENS={default.output_limit}")
    lines += ["# models: " + ", ".join(m.id for m in conn.ordered_models)] if conn.models else []
    return "\n".join(lines), "Run: claude  (or: claude -p 'your task' --model MODEL)"


CLAUDE_MODEL_VARS = (
    *("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL"),
    *("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"),
)


RENDERERS: dict[str, Callable[[Connection], tuple[str, str]]] = {
    "opencode": render_opencode,
    "continue": render_continue,
    "aider": render_aider,
    "cline": render_cline,
    "cursor": render_cursor,
    "codex": render_codex,
    "claude-code": render_claude_code,
    "env": render_env,
}


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(text)


def _export(name: str, conn: Connection) -> str:
    if conn.key is not None:
        return f"export {name}={shlex.quote(conn.key)}"
    return f'export {name}="$({conn.key_command})"'


def _ghost_note() -> str:
    return (
        "Ghosts (sparks, sparks/coder, ...) come after the plain models: they run their own "
        "tools here and hand yours back (docs/ghosts.md, client tools)."
    )
