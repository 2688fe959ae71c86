"""The dashboard at /ui/ (SPEC §10.1): a page shipped in this package, a one-time login code
traded for a session cookie, and data calls computed from the observer log and live state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from sparks.observe.observer import events_path
from sparks.server.live_events import observer_events
from sparks.server.state import CONFIG, UI_DATA, UI_LOGINS
from sparks.server.ui import views
from sparks.server.ui.access import LOGIN_CODE_PATH, SESSION_PATH
from sparks.server.ui.data import DashboardData
from sparks.server.ui.logins import LoginStore


def setup_ui(app: web.Application) -> None:
    """Routes and state of the dashboard; its log index warms up in the background at start."""
    app[UI_LOGINS] = LoginStore()
    app[UI_DATA] = DashboardData(events_path(app[CONFIG].observer))
    app.cleanup_ctx.append(_warm_index)
    root, page, static = views.page_views(views.Assets())
    router = app.router
    router.add_get("/ui", root)
    router.add_get("/ui/", page)
    router.add_get("/ui/static/{version}/{name}", static)
    router.add_post(LOGIN_CODE_PATH, views.login_code)
    router.add_post(SESSION_PATH, views.session)
    router.add_post("/ui/api/logout", views.logout)
    router.add_get("/ui/api/activity", views.activity)
    router.add_get("/ui/api/requests", views.requests_list)
    router.add_get("/ui/api/requests/{request_id}", views.request_story)
    router.add_get("/ui/api/runs", views.runs)
    router.add_get("/ui/api/routes", views.routes)
    router.add_get("/ui/api/events", observer_events)


async def _warm_index(app: web.Application) -> AsyncIterator[None]:
    index = app[UI_DATA].index
    warming = asyncio.create_task(asyncio.to_thread(index.refresh))
    yield
    index.close()
    with contextlib.suppress(Exception):
        await warming
