"""Two middleware layers, in STYLE.md's order: the outer one gives each request its id, record
and responder and shapes every error; the inner one checks Host/Origin, then the key, then the
limiter, so a 401 or 429 is still logged. (Five layers cost ~1% of a request's CPU each.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sparks.auth import presented_key
from sparks.errors import SparksError
from sparks.limiter import format_reset
from sparks.observe.record import RequestRecord
from sparks.pipeline.responder import Responder
from sparks.security import cors_headers, host_allowed, origin_allowed, preflight_headers
from sparks.server.messages import MessagesFront
from sparks.server.state import (
    CONFIG,
    CREDENTIALS,
    LIMITER,
    OBSERVER,
    PRINCIPAL,
    RATE_HEADERS,
    RECORD,
    REQUEST_ID,
    REQUEST_IDS,
    RESPONDER,
)
from sparks.server.ui.access import is_ui_path, needs_key, ui_origin_allowed, ui_principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/health", "/"})  # "/": Claude Code probes HEAD / (SPEC §9.2)
METRICS_PATH = "/metrics"
log = logging.getLogger("sparks")


def is_public(request: web.Request) -> bool:
    """/health always; /metrics with `[observer] metrics_public = true` (SPEC §10.2)."""
    if request.path == METRICS_PATH:
        return request.app[CONFIG].observer.metrics_public
    return request.path in PUBLIC_PATHS


def wants_trace(request: web.Request) -> bool:
    return request.query.get("include_route_trace", "").lower() in ("1", "true", "yes")


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: request id, the request's record and responder, and error shaping: every
    failure becomes an OpenAI-shaped error (or, once a stream has started, its error event and
    `[DONE]`), nothing text/plain, no traceback, never a second response; the responder writes
    the terminal event on every path."""
    request_id = request.app[REQUEST_IDS]()
    request[REQUEST_ID] = request_id
    responder: Responder | None = None
    if not (is_public(request) and request.method in ("GET", "HEAD")):
        record = RequestRecord(
            request.app[OBSERVER],
            request_id,
            request.method,
            request.path,
            request.headers.get("User-Agent", ""),
        )
        responder = Responder(request, record, wants_trace(request))
        if request.path.startswith("/v1/messages"):  # Anthropic-shaped errors, even 401/404/429
            responder.front = MessagesFront()
        request[RECORD] = record
        request[RESPONDER] = responder
    try:
        response = await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        if responder is not None:
            responder.disconnected()
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await _error_response(responder, _from_http_exception(request, exc))
    except SparksError as exc:
        return await _error_response(responder, exc)
    except Exception as exc:
        log.exception("internal error on %s %s", request.method, request.path)
        error = SparksError(500, "internal_error", f"Internal error ({type(exc).__name__})")
        return await _error_response(responder, error)
    if responder is not None:
        responder.finish(response)
    return response


async def _error_response(responder: Responder | None, error: SparksError) -> web.StreamResponse:
    if responder is None:  # a public path
        return web.Response(
            status=error.status, body=error.body_bytes(), content_type="application/json"
        )
    return await responder.error(error)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> SparksError:
    if exc.status == 413:
        limit = request.app[CONFIG].openai_api.max_body_bytes
        return SparksError(
            413, "request_too_large", f"Request body exceeds max_body_bytes ({limit} bytes)"
        )
    if exc.status == 404:
        return SparksError(404, "not_found", f"No endpoint {request.method} {request.path}")
    if exc.status == 405:
        return SparksError(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.path}"
        )
    return SparksError(exc.status, "http_error", exc.reason or "HTTP error")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who may ask, in order: Host and Origin (and CORS preflight, body size), then the key,
    then the limiter. One layer: each check raises, the outer middleware shapes the error."""
    preflight = check_guard(request)
    if preflight is not None:
        return preflight
    check_auth(request)
    check_limit(request)
    return await handler(request)


def check_guard(request: web.Request) -> web.Response | None:
    """Host (DNS rebinding), Origin (browsers), CORS preflight and the body size limit."""
    api = request.app[CONFIG].openai_api
    if not host_allowed(request.headers.get("Host"), api.allowed_hosts):
        raise SparksError(
            403,
            "host_not_allowed",
            "Host header is not a loopback name or in openai_api.allowed_hosts",
        )
    origin = request.headers.get("Origin")
    if is_ui_path(request.path):  # the dashboard: its own origin only (SPEC §10.1)
        if origin is not None and not ui_origin_allowed(request, origin):
            raise SparksError(403, "origin_not_allowed", "The dashboard answers its own page only")
    elif origin is not None and not origin_allowed(origin, api.allowed_origins):
        raise SparksError(
            403, "origin_not_allowed", "Browser origin is not in openai_api.allowed_origins"
        )
    if request.method == "OPTIONS" and origin is not None:
        return web.Response(status=204, headers=preflight_headers(origin))
    length = request.content_length
    if length is not None and length > api.max_body_bytes:
        raise SparksError(
            413,
            "request_too_large",
            f"Request body exceeds max_body_bytes ({api.max_body_bytes} bytes)",
        )
    return None


def check_auth(request: web.Request) -> None:
    if is_public(request):
        return
    if is_ui_path(request.path) and not needs_key(request.path):
        # the page needs nothing; its data calls the session cookie, which nothing else takes
        if (ui := ui_principal(request)) is not None:
            request[PRINCIPAL] = request[RECORD].principal = ui
        return
    principal = request.app[CREDENTIALS].principal_for(presented_key(request.headers))
    if principal is None:
        raise SparksError(
            401,
            "invalid_api_key",
            "Missing or invalid API key: send 'Authorization: Bearer <key>' "
            "(see `sparks key show`)",
            headers={"WWW-Authenticate": 'Bearer realm="sparks"'},
        )
    request[PRINCIPAL] = principal
    request[RECORD].principal = principal


def check_limit(request: web.Request) -> None:
    bucket = request.app[LIMITER]
    if bucket is None or is_public(request) or is_ui_path(request.path):
        # the dashboard reaches no backend; its calls must not spend the agents' budget
        return
    decision = bucket.try_acquire()
    request[RATE_HEADERS] = {
        "x-ratelimit-limit-requests": str(bucket.per_minute),
        "x-ratelimit-remaining-requests": str(decision.remaining),
        "x-ratelimit-reset-requests": format_reset(decision.reset_s),
    }
    if not decision.allowed:
        raise SparksError(
            429,
            "rate_limit_exceeded",
            f"Rate limit of {bucket.per_minute} requests/minute (burst "
            f"{int(bucket.capacity)}) exceeded; retry after {decision.retry_after_s}s",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


MIDDLEWARES = (observe_middleware, access_middleware)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries, set just before they are sent (streams included)."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    rate = request.get(RATE_HEADERS)
    if rate:
        response.headers.update(rate)
    origin = request.headers.get("Origin")
    if origin and origin_allowed(origin, request.app[CONFIG].openai_api.allowed_origins):
        for name, value in cors_headers(origin).items():
            response.headers.setdefault(name, value)
