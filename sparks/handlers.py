"""HTTP handlers: parse → route → call → respond. Nothing else lives here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import __version__, jsonfast
from .errors import SparksError
from .keys import backend_key_status
from .protocol import ChatRequest, parse_chat_request, parse_json_object, read_body
from .reasoning import apply_reasoning
from .relay import json_answer, stream_answer
from .routing import Route, Target
from .state import CATALOG, GHOSTS, RECORD, STARTED_AT, UPSTREAMS

MODEL_KINDS = {"ghost": ("ghost", "classifier"), "alias": ("alias",), "backend": ("backend",)}


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
    request[RECORD].complete(200)
    return web.json_response({"object": "list", "data": page, "total": total})


def _search_text(entry: dict[str, Any]) -> str:
    meta = entry["sparks"]
    return " ".join(str(v) for v in (entry["id"], meta.get("description"), meta.get("backend")))


async def get_model(request: web.Request) -> web.Response:
    record = request[RECORD]
    model_id = request.match_info["model_id"]
    record.received(model=model_id)
    catalog = request.app[CATALOG]
    entry = catalog.entry(model_id)
    if entry is None:
        # ids that resolve by pattern (`backend/anything`) are real too, with what we know
        try:
            route = catalog.table.resolve(model_id)
        except SparksError:
            route = None
        if route is None or route.kind == "classify":
            raise SparksError(
                404, "model_not_found", f"The model '{model_id}' does not exist", param="model"
            )
        entry = catalog._entry_for(model_id, route)
    record.complete(200)
    return web.json_response(entry)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    record = request[RECORD]
    body = parse_json_object(await read_body(request.read()))
    chat = parse_chat_request(body)
    record.received(chat.model, chat.stream, chat.message_count, messages=body.get("messages"))
    route = request.app[CATALOG].table.resolve(chat.model)
    include_trace = request.query.get("include_route_trace", "").lower() in ("1", "true", "yes")
    if route.kind in ("classify", "ghost") or (route.chain and route.chain[0].ghost):
        return await request.app[GHOSTS].handle(request, chat, route)
    chain = tuple(t for t in route.chain if t.backend)
    _emit_route(request, route, chain)
    if not chain:
        raise SparksError(503, "no_backend", f"No backend can serve '{chat.model}'", param="model")
    catalog = request.app[CATALOG]
    served = await request.app[UPSTREAMS].open_chain(
        chain,
        "/chat/completions",
        lambda target: upstream_chat_body(chat, target, catalog.dialect(target)),
        record,
        stream=chat.stream,
    )
    catalog.note_use(route, served.target)
    if chat.stream:
        return await stream_answer(
            request, request.app[CATALOG], served, record, chat.include_usage
        )
    return json_answer(request.app[CATALOG], served, record, include_trace)


def _emit_route(request: web.Request, route: Route, chain: tuple[Target, ...]) -> None:
    request[RECORD].emit(
        "route.resolved",
        model=route.model,
        kind=route.kind,
        target=chain[0].sparks_id if chain else None,
        chain=[t.sparks_id for t in chain] if route.kind == "alias" else None,
        ghost=None,
        classifier=None,
    )


def upstream_chat_body(chat: ChatRequest, target: Target, dialect: str) -> bytes:
    """Every field forwarded unchanged but `model`, the reasoning fields (mapped to the model's
    dialect) and, for streams, `stream_options.include_usage` (always requested)."""
    body = apply_reasoning(chat.body, dialect)
    body = dict(body) if body is chat.body else body
    body["model"] = target.upstream_model
    if chat.stream:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return jsonfast.dumps(body)


async def list_aliases(request: web.Request) -> web.Response:
    """Alias chains and their recent usage (since this daemon started)."""
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
    request[RECORD].complete(200)
    return web.json_response({"object": "list", "data": data})


async def list_providers(request: web.Request) -> web.Response:
    """Backends with reachability and key status (never a key)."""
    request[RECORD].received()
    catalog = request.app[CATALOG]
    upstreams = request.app[UPSTREAMS]
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
    request[RECORD].complete(200)
    return web.json_response({"object": "list", "data": data})


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
