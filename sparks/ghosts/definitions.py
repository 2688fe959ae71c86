"""Ghost definitions with `[ghost_defaults]` applied: what `sparks ghosts` lists and the loop runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_GHOST_TOOLS, Config, default_config_dir
from ..errors import ConfigError

TOOL_NAMES = DEFAULT_GHOST_TOOLS
"""Every ghost tool, in schema order (config.py validates `tools` against the same tuple)."""
WRITE_TOOLS = frozenset({"write_file", "edit_file"})


@dataclass(frozen=True)
class GhostSpec:
    name: str
    description: str
    tools: tuple[str, ...]
    workspace: Path
    read_only: bool
    model: str  # a backend/model id, an alias, or "" for the first available backend model
    max_steps: int
    sandbox: str
    soul: str  # markdown identity text ("" when none)
    step_timeout_s: float
    run_timeout_s: float
    client_tools: str = "merge"  # merge | ignore | reject: a request's own `tools` (SPEC §5.1)

    @property
    def sparks_id(self) -> str:
        return f"sparks/{self.name}"


def protected_paths(config: Config, extra: Iterable[Path] = ()) -> list[Path]:
    """What no ghost workspace may contain: Sparks' config dir (key file, client keys), the
    config file in use, the event log (if configured) and whatever the caller adds."""
    paths = [default_config_dir(), default_config_dir() / "api_key"]
    if config.path is not None:
        paths.append(config.path)
    if config.observer.path:
        paths.append(Path(config.observer.path))
    return [Path(p).expanduser().resolve() for p in [*paths, *extra]]


def workspace_problem(workspace: Path, protected: Iterable[Path]) -> str | None:
    """Why a (resolved) workspace would let a ghost reach what governs Sparks, or None."""
    home = Path.home().resolve()
    if workspace == Path(workspace.anchor):
        return f"{workspace} is the filesystem root"
    if workspace == home:
        return f"{workspace} is your home directory; use a project directory"
    if home.is_relative_to(workspace):
        return f"{workspace} contains your home directory; use a project directory"
    for path in protected:
        if path.is_relative_to(workspace):
            return f"{workspace} contains {path}, which governs Sparks; use a project directory"
    return None


def ghost_specs(config: Config, protected: Iterable[Path] = ()) -> list[GhostSpec]:
    """Resolve every ghost: relative workspaces against the current directory, souls against the
    config file's directory. A workspace that is `/`, `$HOME`, or contains Sparks' config dir,
    key file, config file, event log or any of `protected` is a ConfigError naming the ghost."""
    defaults = config.ghost_defaults
    guarded = protected_paths(config, protected)
    base = config.path.parent if config.path else Path.cwd()
    specs = []
    for ghost in config.ghosts:
        tools = tuple(t for t in ghost.tools if not (ghost.read_only and t in WRITE_TOOLS))
        soul = ""
        if ghost.soul:
            soul_path = (base / Path(ghost.soul).expanduser()).resolve()
            try:
                soul = soul_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{config.source}: ghosts.{ghost.name}.soul: cannot read {soul_path}: "
                    f"{exc.strerror}"
                ) from None
        workspace = Path(ghost.workspace).expanduser().resolve()
        problem = workspace_problem(workspace, guarded)
        if problem is not None:
            raise ConfigError(f"{config.source}: ghosts.{ghost.name}.workspace: {problem}")
        specs.append(
            GhostSpec(
                name=ghost.name,
                description=ghost.description,
                tools=tools,
                workspace=workspace,
                read_only=ghost.read_only,
                model=ghost.model if ghost.model is not None else defaults.model,
                max_steps=ghost.max_steps or defaults.max_steps,
                sandbox=ghost.sandbox or defaults.sandbox,
                soul=soul,
                step_timeout_s=defaults.step_timeout_s,
                run_timeout_s=defaults.run_timeout_s,
                client_tools=ghost.client_tools or defaults.client_tools,
            )
        )
    return specs
