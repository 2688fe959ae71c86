"""Model id → route (SPEC §4.1, §4.4). Pure: a table built from config plus discovered models.

Exact ids (ghosts, aliases, every known `backend/model`, unique bare ids) live in one dict; only
what cannot be enumerated (`backend/<anything>`, `sparks/<unknown>`, unknown ids) falls to the
ordered pattern rules at the end of `resolve`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sparks.config import BackendConfig, Config
from sparks.errors import SparksError, model_not_found
from sparks.security import is_loopback_host

LOCAL_SUFFIX = ":local"
CLASSIFY_ID = "sparks"
GHOST_PREFIX = "sparks/"


@dataclass(frozen=True, slots=True)
class Target:
    """One entry of a chain: a model on a backend, or a ghost."""

    sparks_id: str  # what the response's `model` says: `ollama/qwen3:8b`, `sparks/scout`
    backend: str | None = None
    upstream_model: str | None = None
    ghost: str | None = None
    local: bool = True

    @property
    def kind(self) -> str:
        return "ghost" if self.ghost else "backend"


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # the id as the client sent it
    kind: str  # "classify" | "ghost" | "alias" | "backend"
    chain: tuple[Target, ...] = ()
    alias: str | None = None
    local_only: bool = False

    @property
    def label(self) -> str:
        """The `X-Sparks-Route` value before execution (the served target may differ)."""
        if self.kind == "alias":
            return f"alias:{self.alias}"
        if self.kind == "classify":
            return "classify"
        first = self.chain[0]
        return f"ghost:{first.ghost}" if first.ghost else f"backend:{first.sparks_id}"


def is_loopback_url(base_url: str) -> bool:
    return is_loopback_host((urlsplit(base_url).hostname or "").lower())


class RouteTable:
    """Immutable routing snapshot; rebuilt whenever a backend's model list changes."""

    def __init__(self, config: Config, backend_models: Mapping[str, Sequence[str]]) -> None:
        self.config = config
        self.backends: Mapping[str, BackendConfig] = config.backends
        self.ghost_names = tuple(g.name for g in config.ghosts)
        self.local_backends = frozenset(
            name for name, b in config.backends.items() if is_loopback_url(b.base_url)
        )
        self.exact: dict[str, Route] = {CLASSIFY_ID: Route(CLASSIFY_ID, "classify")}
        for name in self.ghost_names:
            gid = GHOST_PREFIX + name
            self.exact[gid] = Route(gid, "ghost", (Target(gid, ghost=name),))
        owners: dict[str, list[str]] = {}
        for backend, models in backend_models.items():
            if backend not in self.backends:
                continue
            for model in models:
                target = self._backend_target(backend, model)
                self.exact.setdefault(
                    target.sparks_id, Route(target.sparks_id, "backend", (target,))
                )
                owners.setdefault(model, []).append(backend)
        self.ambiguous = {m: tuple(b) for m, b in owners.items() if len(b) > 1}
        for model, backends in owners.items():
            if len(backends) == 1 and model not in self.exact and not self._names_backend(model):
                self.exact[model] = Route(
                    model, "backend", (self._backend_target(backends[0], model),)
                )
        self.problems: list[str] = []
        for alias in config.aliases:
            self.exact[alias] = Route(alias, "alias", self._expand_alias(alias), alias=alias)

    def _names_backend(self, model: str) -> bool:
        """`x/…` with a configured backend `x` means that backend (rule 4 before rule 5)."""
        backend, sep, rest = model.partition("/")
        return bool(sep and rest and backend in self.backends)

    def _backend_target(self, backend: str, model: str) -> Target:
        return Target(
            f"{backend}/{model}",
            backend=backend,
            upstream_model=model,
            local=backend in self.local_backends,
        )

    def _expand_alias(self, alias: str) -> tuple[Target, ...]:
        targets: list[Target] = []
        for entry in self.config.aliases[alias]:
            if entry in self.config.aliases:
                targets.extend(self._expand_alias(entry))
                continue
            route = self._resolve_entry(entry)
            if route is None:
                self.problems.append(
                    f"aliases.{alias}: {entry!r} is not a ghost id, an alias, a configured "
                    "backend's model (backend/model) or a model any backend serves now"
                )
                continue
            targets.extend(route.chain)
        unique = list(dict.fromkeys(targets))
        return tuple(unique)

    def _resolve_entry(self, entry: str) -> Route | None:
        route = self.exact.get(entry)
        if route is not None and route.kind != "classify":
            return route
        return self._backend_pattern(entry)

    def _backend_pattern(self, model: str) -> Route | None:
        backend, sep, rest = model.partition("/")
        if sep and rest and backend in self.backends:
            target = self._backend_target(backend, rest)
            return Route(model, "backend", (target,))
        return None

    def resolve(self, model: str) -> Route:
        """Resolve a client's `model`; raises SparksError (404/503) when it cannot be routed."""
        local_only = model.endswith(LOCAL_SUFFIX) and model != LOCAL_SUFFIX
        base = model[: -len(LOCAL_SUFFIX)] if local_only else model
        route = self.exact.get(base) or self._pattern_route(base)
        if local_only:
            route = self._restrict_local(route, model)
        return route

    def _pattern_route(self, model: str) -> Route:
        if model.startswith(GHOST_PREFIX) and model[len(GHOST_PREFIX) :] not in self.ghost_names:
            known = ", ".join(GHOST_PREFIX + g for g in self.ghost_names) or "none"
            raise model_not_found(model, f"no such ghost (ghosts: {known})")
        route = self._backend_pattern(model)
        if route is not None:
            return route
        if self.config.openai_api.unknown_model == "reject":
            if model in self.ambiguous:
                served = ", ".join(f"{b}/{model}" for b in self.ambiguous[model])
                raise model_not_found(model, f"served by several backends; use one of {served}")
            raise model_not_found(model)
        return Route(model, "classify")

    def _restrict_local(self, route: Route, model: str) -> Route:
        if route.kind == "classify":
            return replace(route, local_only=True)
        chain = tuple(t for t in route.chain if t.local)
        if not chain:
            raise SparksError(
                503,
                "no_local_backend",
                f"model '{model}' has no target on a loopback backend; nothing may leave this machine",
                param="model",
            )
        return replace(route, chain=chain, local_only=True)
