"""Every typed key for app and request state, declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sparks.auth import Credentials
    from sparks.backends.catalog import Catalog
    from sparks.backends.upstream import Upstreams
    from sparks.config import Config
    from sparks.limiter import TokenBucket
    from sparks.observe.metrics import RequestMetrics
    from sparks.observe.observer import Observer
    from sparks.observe.record import RequestRecord
    from sparks.pipeline.responder import Responder
    from sparks.pipeline.serve import Pipeline
    from sparks.server.response_store import ResponseStore
    from sparks.server.ui.data import DashboardData
    from sparks.server.ui.logins import LoginStore

CONFIG: web.AppKey[Config] = web.AppKey("config")
OBSERVER: web.AppKey[Observer] = web.AppKey("observer")
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
LIMITER: web.AppKey[TokenBucket | None] = web.AppKey("limiter")
UPSTREAMS: web.AppKey[Upstreams] = web.AppKey("upstreams")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
RESPONSE_STORE: web.AppKey[ResponseStore] = web.AppKey("response_store")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
REQUEST_IDS: web.AppKey[Callable[[], str]] = web.AppKey("request_ids")
UI_LOGINS: web.AppKey[LoginStore] = web.AppKey("ui_logins")
UI_DATA: web.AppKey[DashboardData] = web.AppKey("ui_data")
METRICS: web.AppKey[RequestMetrics] = web.AppKey("metrics")

RECORD: web.RequestKey[RequestRecord] = web.RequestKey("record")
RESPONDER: web.RequestKey[Responder] = web.RequestKey("responder")
PRINCIPAL: web.RequestKey[str] = web.RequestKey("principal")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
RATE_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("rate_headers")
