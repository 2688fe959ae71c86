"""Every typed key for app and request state, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .auth import Credentials
    from .catalog import Catalog
    from .config import Config
    from .ghost_endpoint import GhostRunner
    from .limiter import TokenBucket
    from .observer import Observer
    from .tracking import RequestRecord
    from .upstream import Upstreams

CONFIG: web.AppKey[Config] = web.AppKey("config")
OBSERVER: web.AppKey[Observer] = web.AppKey("observer")
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
LIMITER: web.AppKey[TokenBucket | None] = web.AppKey("limiter")
UPSTREAMS: web.AppKey[Upstreams] = web.AppKey("upstreams")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
GHOSTS: web.AppKey[GhostRunner] = web.AppKey("ghosts")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")

RECORD: web.RequestKey[RequestRecord] = web.RequestKey("record")
PRINCIPAL: web.RequestKey[str] = web.RequestKey("principal")
