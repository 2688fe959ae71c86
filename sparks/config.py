"""config.toml → frozen dataclasses (SPEC §2). Parsed once; every error names the file and key path."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from sparks.config_parser import TableParser
from sparks.errors import ConfigError

THINKING_DIALECTS = ("auto", "openai", "chat_template_kwargs", "ollama", "none")
SANDBOX_MODES = ("auto", "bwrap", "none")
UNKNOWN_MODEL_POLICIES = ("classify", "reject")
CLIENT_TOOL_POLICIES = ("merge", "ignore", "reject")  # a request's own `tools` on a ghost (§5.1)
DEFAULT_GHOST_TOOLS = ("read_file", "list_dir", "search", "write_file", "edit_file", "shell")


@dataclass(frozen=True)
class OpenAIApiConfig:
    enabled: bool = True
    bind: str = "127.0.0.1:8787"
    api_key_env: str = "SPARKS_OPENAI_API_KEY"
    api_key: str = ""  # inline secret, only with SPARKS_ALLOW_INLINE_SECRETS=1
    principal: str = "self"
    requests_per_minute: int = 120
    burst: int = 30
    advertised_models: tuple[str, ...] | None = None
    unknown_model: str = "classify"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 16 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    header_timeout_s: float = 30.0  # a connection without a complete request by then is closed

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]


@dataclass(frozen=True)
class OtlpConfig:
    endpoint: str = ""  # "" = no traces; else the collector's OTLP/HTTP base URL (SPEC §10.3)
    service_name: str = "sparks"
    timeout_s: float = 10.0  # per export, in the exporter's thread; never on the request path


@dataclass(frozen=True)
class ObserverConfig:
    path: str = ""
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 5
    log_content: bool = False
    console: bool = True
    metrics_public: bool = False  # GET /metrics without a key (SPEC §10.2)
    otlp: OtlpConfig = OtlpConfig()


@dataclass(frozen=True)
class ModelInfo:
    context_length: int | None = None
    supports_tools: bool | None = None
    thinking: str = "auto"  # auto: chosen by backend kind (reasoning.default_dialect)
    thinking_default_on: bool = False
    thinking_toggleable: bool = False
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0


DEFAULT_MODEL_INFO = ModelInfo()  # frozen: one shared instance for models without a table


@dataclass(frozen=True)
class BackendConfig:
    name: str
    base_url: str
    api_key_env: str = ""
    api_key: str = ""  # inline secret, only with SPARKS_ALLOW_INLINE_SECRETS=1
    timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    cooldown_s: float = 30.0  # skip in fallback chains this long after a connect error/timeout
    models: tuple[str, ...] | None = None
    api: str = "chat"  # which API it speaks natively: chat | responses | anthropic (SPEC §9)
    model_info: Mapping[str, ModelInfo] = field(default_factory=lambda: types.MappingProxyType({}))

    def info_for(self, model: str) -> ModelInfo:
        return self.model_info.get(model) or DEFAULT_MODEL_INFO


@dataclass(frozen=True)
class ClassifierConfig:
    model: str = ""
    timeout_s: float = 8.0


@dataclass(frozen=True)
class GhostDefaults:
    model: str = ""
    max_steps: int = 15
    sandbox: str = "auto"
    step_timeout_s: float = 300.0
    run_timeout_s: float = 1800.0
    client_tools: str = "merge"
    default_ghost: str = ""  # the classifier's last resort; "" = the first ghost


@dataclass(frozen=True)
class GhostConfig:
    name: str
    description: str = ""
    tools: tuple[str, ...] = DEFAULT_GHOST_TOOLS
    workspace: str = "."
    read_only: bool = False
    soul: str = ""
    model: str | None = None
    max_steps: int | None = None
    sandbox: str | None = None
    client_tools: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    openai_api: OpenAIApiConfig = OpenAIApiConfig()
    observer: ObserverConfig = ObserverConfig()
    backends: Mapping[str, BackendConfig] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    aliases: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    classifier: ClassifierConfig = ClassifierConfig()
    ghost_defaults: GhostDefaults = GhostDefaults()
    ghosts: tuple[GhostConfig, ...] = ()

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "built-in defaults"


DEFAULT_GHOSTS = (
    GhostConfig(
        name="coder",
        description="Multi-file coding tasks: refactors, features, bug fixes.",
        tools=DEFAULT_GHOST_TOOLS,
    ),
    GhostConfig(
        name="scout",
        description="Explores files and runs read-only commands; changes nothing.",
        tools=("read_file", "list_dir", "search", "shell"),
        read_only=True,
    ),
)


def split_bind(bind: str) -> tuple[str, int]:
    """`127.0.0.1:8787` / `[::1]:8787` → (host, port); ValueError when malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8787")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be 0-65535")
    return host.strip("[]"), port


def default_config_dir() -> Path:
    return Path(click.get_app_dir("sparks"))


def find_config_path(explicit: str | None) -> Path | None:
    """--config, else $SPARKS_CONFIG, else ./config.toml (unless a ghost could have written it),
    else config.toml in the user config dir."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("SPARKS_CONFIG")
    if env:
        return Path(env)
    user_config = default_config_dir() / "config.toml"
    if Path("config.toml").is_file() and ignored_cwd_config() is None:
        return Path("config.toml")
    return user_config if user_config.is_file() else None


def ignored_cwd_config() -> str | None:
    """Why ./config.toml is not read, or None when it may be (SPEC §5.2).

    A file a ghost can write must not decide how Sparks runs (a ghost could otherwise turn its
    own sandbox off for the next start). Which ghosts could have written it is judged by the
    config that would be in use without it: the user config dir's file, else the defaults,
    whose `coder` works in the current directory, so by default ./config.toml is ignored."""
    candidate = Path("config.toml")
    if not candidate.is_file() or os.environ.get("SPARKS_CONFIG"):
        return None
    user_config = default_config_dir() / "config.toml"
    try:
        fallback = (
            load_config(str(user_config)) if user_config.is_file() else parse_config({}, None)
        )
    except ConfigError:
        fallback = parse_config({}, None)
    where = candidate.resolve()
    for ghost in fallback.ghosts:
        workspace = Path(ghost.workspace).expanduser().resolve()
        if not ghost.read_only and where.is_relative_to(workspace):
            return (
                f"./config.toml is ignored: it lies in ghost {ghost.name}'s writable workspace "
                f"({workspace}); name it with --config (or $SPARKS_CONFIG) to use it"
            )
    return None


def load_config(explicit: str | None = None) -> Config:
    """Find and parse the config; an explicitly named file that is missing is an error."""
    path = find_config_path(explicit)
    if path is None:
        return parse_config({}, None)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(data, path)


BACKEND_APIS = ("chat", "responses", "anthropic")

TOP_LEVEL = (
    "openai_api",
    "observer",
    "backends",
    "aliases",
    "classifier",
    "ghost_defaults",
    "ghosts",
)


def parse_config(data: Mapping[str, Any], path: Path | None) -> Config:
    """Validate a parsed TOML document into a Config."""
    p = TableParser(path)
    for key in data:
        if key not in TOP_LEVEL:
            raise p.error(key, "unknown key")
    api = p.dataclass_from(OpenAIApiConfig, data.get("openai_api", {}), "openai_api")
    try:
        split_bind(api.bind)
    except ValueError as exc:
        raise p.error("openai_api.bind", f"{exc}; got {api.bind!r}") from None
    p.choice(api.unknown_model, UNKNOWN_MODEL_POLICIES, "openai_api.unknown_model")
    observer = _parse_observer(p, data.get("observer", {}))
    if observer.path and path is not None and not Path(observer.path).expanduser().is_absolute():
        # relative to the config file, so `serve` and `events` agree from any directory
        observer = dataclasses.replace(observer, path=str(path.parent / observer.path))
    backends = _parse_backends(p, data.get("backends", {}))
    classifier = p.dataclass_from(ClassifierConfig, data.get("classifier", {}), "classifier")
    defaults = p.dataclass_from(GhostDefaults, data.get("ghost_defaults", {}), "ghost_defaults")
    p.choice(defaults.sandbox, SANDBOX_MODES, "ghost_defaults.sandbox")
    p.choice(defaults.client_tools, CLIENT_TOOL_POLICIES, "ghost_defaults.client_tools")
    if defaults.max_steps < 1:
        raise p.error("ghost_defaults.max_steps", "must be at least 1")
    ghosts = _parse_ghosts(p, data.get("ghosts", []))
    names = [g.name for g in ghosts]
    if defaults.default_ghost and defaults.default_ghost not in names:
        raise p.error(
            "ghost_defaults.default_ghost",
            f"no ghost named {defaults.default_ghost!r}; ghosts: {', '.join(names)}",
        )
    aliases = _parse_aliases(p, data.get("aliases", {}), backends, ghosts)
    return Config(
        path=path,
        openai_api=api,
        observer=observer,
        backends=types.MappingProxyType(backends),
        aliases=types.MappingProxyType(aliases),
        classifier=classifier,
        ghost_defaults=defaults,
        ghosts=ghosts,
    )


def _parse_observer(p: TableParser, raw: Any) -> ObserverConfig:
    table = dict(p.table(raw, "observer"))
    otlp = p.dataclass_from(OtlpConfig, table.pop("otlp", {}), "observer.otlp")
    if otlp.endpoint and not otlp.endpoint.startswith(("http://", "https://")):
        raise p.error("observer.otlp.endpoint", "must start with http:// or https://")
    return p.dataclass_from(ObserverConfig, table, "observer", otlp=otlp)


def _parse_backends(p: TableParser, raw: Any) -> dict[str, BackendConfig]:
    backends: dict[str, BackendConfig] = {}
    for name, table in p.table(raw, "backends").items():
        key = f"backends.{name}"
        if "/" in name or ":" in name or not name:
            raise p.error(key, "backend names may not contain '/' or ':'")
        table = dict(p.table(table, key))
        if "base_url" not in table:
            raise p.error(f"{key}.base_url", "missing (e.g. http://127.0.0.1:11434/v1)")
        infos: dict[str, ModelInfo] = {}
        for model, info in p.table(table.pop("model_info", {}), f"{key}.model_info").items():
            info_key = f'{key}.model_info."{model}"'
            parsed = p.dataclass_from(ModelInfo, info, info_key)
            p.choice(parsed.thinking, THINKING_DIALECTS, f"{info_key}.thinking")
            infos[model] = parsed
        backend = p.dataclass_from(
            BackendConfig, table, key, name=name, model_info=types.MappingProxyType(infos)
        )
        p.choice(backend.api, BACKEND_APIS, f"{key}.api")
        if not backend.base_url.startswith(("http://", "https://")):
            raise p.error(f"{key}.base_url", "must start with http:// or https://")
        backends[name] = dataclasses.replace(backend, base_url=backend.base_url.rstrip("/"))
    return backends


def _parse_ghosts(p: TableParser, raw: Any) -> tuple[GhostConfig, ...]:
    if not isinstance(raw, list):
        raise p.error("ghosts", "expected an array of tables ([[ghosts]])")
    by_name = {g.name: g for g in DEFAULT_GHOSTS}
    seen: set[str] = set()
    for index, table in enumerate(raw):
        key = f"ghosts[{index}]"
        table = p.table(table, key)
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise p.error(f"{key}.name", "missing")
        if name in seen:
            raise p.error(f"{key}.name", f"ghost {name!r} is defined twice")
        if "/" in name or ":" in name:
            raise p.error(f"{key}.name", "may not contain '/' or ':'")
        seen.add(name)
        ghost = p.dataclass_from(GhostConfig, table, key)
        if ghost.sandbox is not None:
            p.choice(ghost.sandbox, SANDBOX_MODES, f"{key}.sandbox")
        if ghost.client_tools is not None:
            p.choice(ghost.client_tools, CLIENT_TOOL_POLICIES, f"{key}.client_tools")
        unknown_tools = [t for t in ghost.tools if t not in DEFAULT_GHOST_TOOLS]
        if unknown_tools:
            raise p.error(
                f"{key}.tools",
                f"unknown tool {unknown_tools[0]!r}; known: {', '.join(DEFAULT_GHOST_TOOLS)}",
            )
        by_name[name] = ghost  # replaces a default of the same name whole
    return tuple(by_name.values())


def _parse_aliases(
    p: TableParser,
    raw: Any,
    backends: Mapping[str, BackendConfig],
    ghosts: tuple[GhostConfig, ...],
) -> dict[str, tuple[str, ...]]:
    ghost_ids = {"sparks"} | {f"sparks/{g.name}" for g in ghosts}
    aliases: dict[str, tuple[str, ...]] = {}
    for name, chain in p.table(raw, "aliases").items():
        key = f"aliases.{name}"
        if name in ghost_ids:
            raise p.error(key, f"alias name collides with ghost id {name!r}")
        if "/" in name and name.split("/", 1)[0] in backends:
            raise p.error(key, f"alias name collides with backend model id {name!r}")
        if name.endswith(":local"):
            raise p.error(key, "alias names may not end in ':local'")
        if isinstance(chain, str):
            chain = [chain]
        if not isinstance(chain, list) or not chain or not all(isinstance(e, str) for e in chain):
            raise p.error(key, "expected a non-empty list of model ids")
        aliases[name] = tuple(chain)
    for name in aliases:
        _check_alias_cycle(p, name, aliases, [])
    return aliases


def _check_alias_cycle(
    p: TableParser, name: str, aliases: Mapping[str, tuple[str, ...]], stack: list[str]
) -> None:
    if name in stack:
        cycle = " -> ".join([*stack[stack.index(name) :], name])
        raise p.error(f"aliases.{stack[0]}", f"alias cycle: {cycle}")
    for entry in aliases.get(name, ()):
        if entry in aliases:
            _check_alias_cycle(p, entry, aliases, [*stack, name])
