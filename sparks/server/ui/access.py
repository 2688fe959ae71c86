"""Who may reach the dashboard (SPEC §10.1), as the middlewares ask it.

* `/ui/`, its static files and the code exchange need no credential (they hold no data);
* its data calls (`/ui/api/…`) need the session cookie, and nothing else accepts that cookie;
* `POST /ui/login-code` needs the main key, like any API call.
Every `/ui` request passes the Host check like the API; a browser Origin is accepted there only
when it is the daemon's own origin, and that origin is accepted nowhere else.
"""

from __future__ import annotations

from aiohttp import web

from sparks.errors import SparksError
from sparks.server.state import UI_LOGINS

UI_ROOT = "/ui"
LOGIN_CODE_PATH = "/ui/login-code"
SESSION_PATH = "/ui/api/session"
DATA_PREFIX = "/ui/api/"
COOKIE_PATH = "/ui/"
SESSION_PRINCIPAL = "dashboard"
# Fetch metadata a browser sends with a request: only the page itself may make a data call.
TRUSTED_FETCH_SITES = frozenset({"same-origin", "none"})


def cookie_name(request: web.Request) -> str:
    """Cookies are scoped by host, not port: the port in the name keeps two daemons apart."""
    port = request.url.port or 80
    return f"sparks_ui_{port}"


def is_ui_path(path: str) -> bool:
    return path == UI_ROOT or path.startswith(UI_ROOT + "/")


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}".lower()


def ui_origin_allowed(request: web.Request, origin: str) -> bool:
    """The daemon's own origin (exactly), for `/ui` paths; the opaque `null` never matches."""
    return origin.strip().rstrip("/").lower() == own_origin(request)


def needs_key(path: str) -> bool:
    """`/ui` paths that take the API key as usual (not the cookie)."""
    return path == LOGIN_CODE_PATH


def ui_principal(request: web.Request) -> str | None:
    """The principal of a `/ui` request that takes no key: None for the page, its files and the
    code exchange; SESSION_PRINCIPAL for a data call with a valid session cookie; else 401/403."""
    path = request.path
    if not path.startswith(DATA_PREFIX) or path == SESSION_PATH:
        return None
    token = request.cookies.get(cookie_name(request))
    if not request.app[UI_LOGINS].session_valid(token):
        raise SparksError(
            401,
            "invalid_session",
            "No valid dashboard session: run `sparks ui` for a new login link",
        )
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in TRUSTED_FETCH_SITES:
        # a same-site page on another port gets the cookie (sites ignore ports), but no data
        raise SparksError(
            403, "origin_not_allowed", "Dashboard data is served to the dashboard page only"
        )
    return SESSION_PRINCIPAL
