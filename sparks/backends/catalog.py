"""What Sparks serves: backend model lists (discovered or configured), the route table built from
them, and the `/v1/models` entries. Discovery runs at start and in the background, never on the
request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

from sparks.backends.reasoning import default_dialect
from sparks.backends.upstream import Upstreams
from sparks.config import Config, ModelInfo
from sparks.routing import CLASSIFY_ID, GHOST_PREFIX, Route, RouteTable, Target

DISCOVERY_TIMEOUT_S = 3.0
REFRESH_INTERVAL_S = 60.0
THINKING_BY_DIALECT = {"openai", "chat_template_kwargs", "ollama"}


@dataclass
class AliasUsage:
    requests: int = 0
    last_used: float | None = None
    last_served_by: str | None = None


class Catalog:
    """Holds the current RouteTable; swaps in a new one when a backend's model list changes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.created = int(time.time())
        self.models: dict[str, tuple[str, ...]] = {
            name: backend.models or () for name, backend in config.backends.items()
        }
        self.discovered: dict[str, dict[str, dict[str, Any]]] = {}
        self.discovery_errors: dict[str, str] = {}
        self.table = RouteTable(config, self.models)
        self.alias_usage: dict[str, AliasUsage] = {}
        self._dialects: dict[tuple[str, str], str] = {}

    def note_use(self, route: Route, served: Target) -> None:
        """Remember alias usage for /v1/aliases (requests, last used, last served by)."""
        if route.alias is None:
            return
        usage = self.alias_usage.setdefault(route.alias, AliasUsage())
        usage.requests += 1
        usage.last_used = time.time()
        usage.last_served_by = served.sparks_id

    def cost(self, target: Target, usage: dict[str, Any] | None) -> float | None:
        """What `usage` cost on `target` at its configured prices (None without usage)."""
        if not usage or not target.backend:
            return None
        info = self.model_info(target.backend, target.upstream_model or "")
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
            return None
        try:
            cost = (prompt * info.price_in_per_mtok + completion * info.price_out_per_mtok) / 1e6
        except OverflowError:  # token counts no real answer has
            return None
        return round(cost, 8) if math.isfinite(cost) else None

    def first_model(self, local_only: bool) -> str:
        """The first backend model known (a ghost without `model` uses it)."""
        for backend, models in self.models.items():
            if models and (not local_only or backend in self.table.local_backends):
                return f"{backend}/{models[0]}"
        return ""

    def needs_discovery(self) -> list[str]:
        return [name for name, b in self.config.backends.items() if b.models is None]

    async def refresh(self, upstreams: Upstreams, timeout_s: float = DISCOVERY_TIMEOUT_S) -> None:
        """Probe every backend with GET {base_url}/models, concurrently: each answer (or failure)
        updates its reachability; backends without a configured list also take their models."""
        names = list(self.config.backends)
        if not names:
            return
        results = await asyncio.gather(
            *(self._discover(upstreams, name, timeout_s) for name in names)
        )
        discovering = set(self.needs_discovery())
        changed = False
        for name, found in zip(names, results, strict=True):
            if found is None or name not in discovering:
                continue
            ids = tuple(found)
            self.discovered[name] = found
            if ids != self.models.get(name):
                self.models[name] = ids
                changed = True
        if changed:
            self.table = RouteTable(self.config, self.models)

    async def _discover(
        self, upstreams: Upstreams, name: str, timeout_s: float
    ) -> dict[str, dict[str, Any]] | None:
        backend = self.config.backends[name]
        health = upstreams.health[name]
        try:
            data = await upstreams.get_json(backend, "/models", timeout_s)
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise ValueError("GET /models did not return {'data': [...]}")
            found = {
                str(e["id"]): e
                for e in entries
                if isinstance(e, dict) and isinstance(e.get("id"), str)
            }
        except Exception as exc:  # any failure is a fact about the backend, shown in doctor
            message = f"{type(exc).__name__}: {exc}".strip(": ")
            self.discovery_errors[name] = message
            health.reachable, health.last_error = False, message
            return None
        self.discovery_errors.pop(name, None)
        health.reachable, health.last_error = True, None
        return found

    async def refresh_forever(self, upstreams: Upstreams, interval_s: float = REFRESH_INTERVAL_S):
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(Exception):
                await self.refresh(upstreams)

    # --- /v1/models entries --------------------------------------------------------------

    def model_info(self, backend: str, model: str) -> ModelInfo:
        return self.config.backends[backend].info_for(model)

    def dialect(self, target: Target) -> str:
        """The thinking dialect for a backend target: model_info, else by backend kind."""
        key = (target.backend or "", target.upstream_model or "")
        found = self._dialects.get(key)
        if found is None:
            backend = self.config.backends[key[0]]
            info = backend.info_for(key[1])
            found = info.thinking
            if found == "auto":
                found = default_dialect(backend.name, backend.base_url)
            if len(self._dialects) < 10_000:  # model ids come from clients: bound the cache
                self._dialects[key] = found
        return found

    def entries(self) -> list[dict[str, Any]]:
        ids = [CLASSIFY_ID, *(GHOST_PREFIX + g.name for g in self.config.ghosts)]
        ids += list(self.config.aliases)
        for backend, models in self.models.items():
            ids += [f"{backend}/{m}" for m in models]
        advertised = self.config.openai_api.advertised_models
        if advertised is not None:
            ids = [i for i in advertised if self.entry(i) is not None]
        return [e for e in (self.entry(i) for i in dict.fromkeys(ids)) if e is not None]

    def entry(self, model_id: str) -> dict[str, Any] | None:
        route = self.table.exact.get(model_id)
        if route is None:
            return None
        return self.entry_for(model_id, route)

    def entry_for(self, model_id: str, route: Route) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "sparks",
            "context_length": None,
            "supports_tools": False,
            "supports_thinking": False,
            "thinking_default_on": False,
            "thinking_toggleable": False,
        }
        meta: dict[str, Any] = {
            "kind": route.kind,
            "backend": None,
            "upstream_model": None,
            "local": True,
            "description": None,
            "chain": None,
        }
        if route.kind == "classify":
            meta["kind"] = "classifier"
            meta["description"] = "Picks the best ghost for each conversation."
        elif route.kind == "ghost":
            ghost = next(g for g in self.config.ghosts if g.name == route.chain[0].ghost)
            meta["description"] = ghost.description
        else:
            first = route.chain[0] if route.chain else None
            if route.kind == "alias":
                meta["chain"] = list(self.config.aliases[route.alias or ""])  # as configured
                meta["local"] = all(t.local for t in route.chain)
            if first is not None and first.backend:
                self._backend_fields(entry, meta, first.backend, first.upstream_model or "")
                if route.kind == "alias":
                    meta["local"] = all(t.local for t in route.chain)
        entry["sparks"] = meta
        return entry

    def _backend_fields(
        self, entry: dict[str, Any], meta: dict[str, Any], backend: str, model: str
    ) -> None:
        info = self.model_info(backend, model)
        discovered = self.discovered.get(backend, {}).get(model, {})
        entry["owned_by"] = str(discovered.get("owned_by") or backend)
        entry["context_length"] = info.context_length or _discovered_context(discovered)
        if (output_limit := _discovered_output_limit(discovered)) is not None:
            entry["max_output_tokens"] = output_limit
        entry["supports_tools"] = True if info.supports_tools is None else info.supports_tools
        entry["supports_thinking"] = info.thinking in THINKING_BY_DIALECT
        entry["thinking_default_on"] = info.thinking_default_on
        entry["thinking_toggleable"] = info.thinking_toggleable
        meta["backend"] = backend
        meta["upstream_model"] = model
        meta["local"] = backend in self.table.local_backends


def _discovered_context(entry: dict[str, Any]) -> int | None:
    """The context window from every common field (SPEC §4.5); `max_input_tokens` is LiteLLM's,
    at the top level or under its `model_info`."""
    return _discovered_int(
        entry, ("context_length", "max_model_len", "context_window", "max_input_tokens")
    )


def _discovered_output_limit(entry: dict[str, Any]) -> int | None:
    return _discovered_int(entry, ("max_output_tokens",))


def _discovered_int(entry: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    info = entry.get("model_info")
    for source in (entry, info if isinstance(info, dict) else {}):
        for key in keys:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None
