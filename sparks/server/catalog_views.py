"""What Sparks serves, as read-only views: /health, /v1/models, /v1/aliases, /v1/providers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sparks import __version__
from sparks.backends.catalog import Catalog
from sparks.backends.upstream import Upstreams
from sparks.errors import SparksError, model_not_found
from sparks.keys import backend_key_status
from sparks.server.state import CATALOG, RECORD, STARTED_AT, UPSTREAMS

MODEL_KINDS = {"ghost": ("ghost",), "alias": ("alias",), "backend": ("backend",)}


async def health(request: web.Request) -> web.Response:
    uptime = round(time.monotonic() - request.app[STARTED_AT], 1)
    return web.json_response({"status": "ok", "version": __version__, "uptime_s": uptime})


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise SparksError(
            400, "invalid_value", f"'{name}' must be a non-negative integer", param=name
        )
    return min(int(raw), maximum)


async def list_models(request: web.Request) -> web.Response:
    request[RECORD].received()
    entries = request.app[CATALOG].entries()
    search = request.query.get("search", "").strip().lower()
    kind = request.query.get("kind")
    if kind is not None and kind not in MODEL_KINDS:
        raise SparksError(
            400, "invalid_value", "'kind' must be one of ghost, alias, backend", param="kind"
        )
    if kind:
        entries = [e for e in entries if e["sparks"]["kind"] in MODEL_KINDS[kind]]
    if search:
        entries = [e for e in entries if search in _search_text(e)]
    total = len(entries)
    offset = _int_param(request, "offset", 0, 1_000_000)
    limit = _int_param(request, "limit", total, 10_000)
    page = entries[offset : offset + limit]
    return web.json_response({"object": "list", "data": page, "total": total})


def _search_text(entry: dict[str, Any]) -> str:
    meta = entry["sparks"]
    return " ".join(str(v) for v in (entry["id"], meta.get("description"), meta.get("backend")))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    request[RECORD].received(model=model_id)
    catalog = request.app[CATALOG]
    entry = catalog.entry(model_id)
    if entry is None:
        # ids that resolve by pattern (`backend/anything`) are real too, with what we know
        try:
            route = catalog.table.resolve(model_id)
        except SparksError:
            route = None
        if route is None or route.kind == "classify":
            raise model_not_found(model_id)
        entry = catalog.entry_for(model_id, route)
    return web.json_response(entry)


async def list_aliases(request: web.Request) -> web.Response:
    """Alias chains as configured, their expansion, and recent usage (since start)."""
    request[RECORD].received()
    catalog = request.app[CATALOG]
    data = []
    for name, entries in catalog.config.aliases.items():
        route = catalog.table.exact.get(name)
        usage = catalog.alias_usage.get(name)
        data.append(
            {
                "name": name,
                "entries": list(entries),
                "chain": [t.sparks_id for t in route.chain] if route else [],
                "requests": usage.requests if usage else 0,
                "last_used": _iso(usage.last_used) if usage else None,
                "last_served_by": usage.last_served_by if usage else None,
            }
        )
    return web.json_response({"object": "list", "data": data})


async def list_providers(request: web.Request) -> web.Response:
    """Backends with reachability (latest probe or request) and key status (never a key)."""
    request[RECORD].received()
    data = provider_entries(request.app[CATALOG], request.app[UPSTREAMS])
    return web.json_response({"object": "list", "data": data})


def provider_entries(catalog: Catalog, upstreams: Upstreams) -> list[dict[str, Any]]:
    """One entry per backend, as /v1/providers and the dashboard's Routes view show them."""
    data = []
    for name, backend in catalog.config.backends.items():
        health = upstreams.health[name]
        data.append(
            {
                "name": name,
                "host": _host_port(backend.base_url),
                "local": name in catalog.table.local_backends,
                "key_status": backend_key_status(backend),
                "model_count": len(catalog.models.get(name, ())),
                "reachable": health.reachable,
                "last_error": health.last_error,
                "cooldown_s": health.cooldown_left(),
            }
        )
    return data


def _host_port(url: str) -> str:
    """host[:port] without any credentials a base_url might carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return (
        datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
