"""The dashboard's HTTP side: its page and files, the login-code exchange, and its data calls.

Data comes from the observer log through `LogIndex` (read in a worker thread, so a big first
read never stalls the event loop) and from the live catalog and backend health.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sparks.errors import SparksError
from sparks.observe.activity import GROUPINGS
from sparks.observe.event_log import format_ts, parse_since
from sparks.server.catalog_views import provider_entries
from sparks.server.state import CATALOG, CONFIG, PRINCIPAL, RECORD, UI_DATA, UI_LOGINS, UPSTREAMS
from sparks.server.ui import figures
from sparks.server.ui.access import cookie_name
from sparks.server.ui.logins import CODE_TTL_S, SESSION_TTL_S

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css)")
DURATION = re.compile(r"\d+(?:\.\d+)?\s*[smhdw]", re.IGNORECASE)
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=SECURITY_HEADERS)


def _int_query(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise SparksError(400, "invalid_value", f"'{name}' must be a whole number", param=name)
    return min(int(raw), maximum)


# ---------------------------------------------------------------- page and files


class Assets:
    """Every shipped file, read once (nothing is looked up on disk by a request's path), served
    under a path that names their content hash: the browser keeps them for good, and an upgrade
    changes the path. The page itself is never cached."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        digest = hashlib.sha256()
        for path in sorted(directory.iterdir()):
            if path.suffix in CONTENT_TYPES and path.is_file():
                body = path.read_bytes()
                self.files[path.name] = (body, CONTENT_TYPES[path.suffix])
                digest.update(path.name.encode() + b"\0" + body)
        self.version = digest.hexdigest()[:12]
        page = self.files["index.html"][0].replace(b'"static/', f'"static/{self.version}/'.encode())
        self.page = page

    def response(self, name: str) -> web.Response:
        body, content_type = self.files[name]
        headers = {**SECURITY_HEADERS, "Cache-Control": "private, max-age=31536000, immutable"}
        return web.Response(body=body, content_type=content_type, headers=headers)


def page_views(assets: Assets) -> tuple[Any, Any, Any]:
    async def root(request: web.Request) -> web.Response:
        request[RECORD].received()
        raise web.HTTPFound("/ui/")

    async def page(request: web.Request) -> web.Response:
        request[RECORD].received()
        return web.Response(body=assets.page, content_type="text/html", headers=SECURITY_HEADERS)

    async def static(request: web.Request) -> web.Response:
        request[RECORD].received()
        name = request.match_info["name"]
        if (
            request.match_info["version"] != assets.version
            or not ASSET_NAME.fullmatch(name)
            or name not in assets.files
        ):
            raise SparksError(404, "not_found", f"No dashboard file {request.path!r}")
        return assets.response(name)

    return root, page, static


# ---------------------------------------------------------------- login


async def login_code(request: web.Request) -> web.Response:
    """POST /ui/login-code with the main key (what `sparks ui` does): a one-time code."""
    request[RECORD].received()
    if request[PRINCIPAL] != request.app[CONFIG].openai_api.principal:
        raise SparksError(
            403, "permission_denied", "Only the main key can open the dashboard (`sparks ui`)"
        )
    code = request.app[UI_LOGINS].new_code()
    return _json({"code": code, "expires_in_s": CODE_TTL_S, "path": f"/ui/#code={code}"})


async def session(request: web.Request) -> web.Response:
    """POST /ui/api/session {"code": …}: trade a login code for the session cookie."""
    request[RECORD].received()
    try:
        body = await request.json()
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        raise SparksError(400, "missing_field", "'code' (a string) is required", param="code")
    token = request.app[UI_LOGINS].redeem(code)
    if token is None:
        raise SparksError(
            401,
            "invalid_login_code",
            "This login code is unknown, used or expired: run `sparks ui` for a new one",
        )
    response = _json({"ok": True, "expires_in_s": SESSION_TTL_S})
    response.set_cookie(
        cookie_name(request),
        token,
        path="/ui/",
        max_age=int(SESSION_TTL_S),
        httponly=True,
        samesite="Strict",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    request[RECORD].received()
    name = cookie_name(request)
    request.app[UI_LOGINS].end_session(request.cookies.get(name))
    response = _json({"ok": True})
    response.del_cookie(name, path="/ui/")
    return response


# ---------------------------------------------------------------- data


def window_start(value: str, now: datetime | None = None) -> str | None:
    """`24h` → a canonical ts (a duration is rounded down to the minute, so a window asked
    again within the minute is the same window); `all` → None; a timestamp stays exact."""
    if value == "all":
        return None
    try:
        moment = parse_since(value, now)
    except ValueError as exc:
        raise SparksError(400, "invalid_value", str(exc), param="since") from None
    if DURATION.fullmatch(value.strip()):
        moment = moment.replace(second=0, microsecond=0)
    return format_ts(moment)


async def activity(request: web.Request) -> web.Response:
    request[RECORD].received()
    by = request.query.get("by", "model")
    if by not in GROUPINGS:
        raise SparksError(
            400, "invalid_value", f"'by' must be one of {', '.join(GROUPINGS)}", param="by"
        )
    since = window_start(request.query.get("since", "24h"))
    data = request.app[UI_DATA]
    return _json(await asyncio.to_thread(data.activity, by, since))


async def requests_list(request: web.Request) -> web.Response:
    request[RECORD].received()
    limit = _int_query(request, "limit", 100, 1000)
    include_ui = request.query.get("include_ui") in ("1", "true")
    index = request.app[UI_DATA].index
    rows = await asyncio.to_thread(index.read, lambda i: figures.newest(i.rows, limit, include_ui))
    return _json({"object": "list", "data": rows})


async def request_story(request: web.Request) -> web.Response:
    request[RECORD].received()
    rid = request.match_info["request_id"]
    if not REQUEST_ID.fullmatch(rid):
        raise SparksError(400, "invalid_value", "not a request id", param="request_id")
    events = await asyncio.to_thread(request.app[UI_DATA].index.story, rid)
    if not events:
        raise SparksError(404, "not_found", f"No events for request {rid} in the log")
    return _json({"request_id": rid, "events": events})


async def runs(request: web.Request) -> web.Response:
    request[RECORD].received()
    limit = _int_query(request, "limit", 30, 500)
    index = request.app[UI_DATA].index
    data = await asyncio.to_thread(index.read, lambda i: figures.ghost_runs(i.rows, limit))
    return _json({"object": "list", "data": data})


async def routes(request: web.Request) -> web.Response:
    """Models, aliases with their chains and cooldowns, providers, recent fallbacks."""
    request[RECORD].received()
    catalog = request.app[CATALOG]
    upstreams = request.app[UPSTREAMS]
    health = upstreams.health

    def cooldown(target_backend: str | None) -> float:
        state = health.get(target_backend or "")
        return state.cooldown_left() if state is not None else 0.0

    aliases = []
    for name, entries in catalog.config.aliases.items():
        route = catalog.table.exact.get(name)
        usage = catalog.alias_usage.get(name)
        chain = [
            {"id": t.sparks_id, "backend": t.backend, "cooldown_s": cooldown(t.backend)}
            for t in (route.chain if route else ())
        ]
        aliases.append(
            {
                "name": name,
                "entries": list(entries),
                "chain": chain,
                "requests": usage.requests if usage else 0,
                "last_used": _iso(usage.last_used) if usage else None,
                "last_served_by": usage.last_served_by if usage else None,
            }
        )
    providers = provider_entries(catalog, upstreams)
    models = [
        {
            "id": e["id"],
            "kind": e["sparks"]["kind"],
            "backend": e["sparks"].get("backend"),
            "upstream_model": e["sparks"].get("upstream_model"),
            "local": e["sparks"].get("local"),
            "context_length": e.get("context_length"),
            "chain": e["sparks"].get("chain"),
            "description": e["sparks"].get("description"),
        }
        for e in catalog.entries()
    ]
    index = request.app[UI_DATA].index
    recent = await asyncio.to_thread(index.read, lambda i: figures.fallbacks(i.rows, 20))
    return _json(
        {"models": models, "aliases": aliases, "providers": providers, "fallbacks": recent}
    )


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else format_ts(datetime.fromtimestamp(stamp, UTC))
