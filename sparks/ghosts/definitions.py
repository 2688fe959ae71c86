"""Ghost definitions with `[ghost_defaults]` applied: what `sparks ghosts` lists and the loop runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError

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

    @property
    def sparks_id(self) -> str:
        return f"sparks/{self.name}"


def ghost_specs(config: Config) -> list[GhostSpec]:
    """Resolve every ghost: relative workspaces against the current directory, souls against the
    config file's directory."""
    defaults = config.ghost_defaults
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
        specs.append(
            GhostSpec(
                name=ghost.name,
                description=ghost.description,
                tools=tools,
                workspace=Path(ghost.workspace).expanduser().resolve(),
                read_only=ghost.read_only,
                model=ghost.model if ghost.model is not None else defaults.model,
                max_steps=ghost.max_steps or defaults.max_steps,
                sandbox=ghost.sandbox or defaults.sandbox,
                soul=soul,
                step_timeout_s=defaults.step_timeout_s,
                run_timeout_s=defaults.run_timeout_s,
            )
        )
    return specs
