"""The aiohttp application: middleware order, app state, lifecycle, and `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TextIO

from aiohttp import web

from . import __version__
from .auth import Credentials, presented_key
from .catalog import Catalog
from .config import Config
from .endpoints import json_endpoint, speech, transcriptions
from .errors import SparksError
from .ghost_endpoint import GhostRunner
from .handlers import (
    chat_completions,
    get_model,
    health,
    list_aliases,
    list_models,
    list_providers,
)
from .limiter import TokenBucket, format_reset
from .live_events import observer_events
from .observer import Observer
from .security import cors_headers, host_allowed, origin_allowed, preflight_headers
from .state import (
    CATALOG,
    CONFIG,
    CREDENTIALS,
    GHOSTS,
    LIMITER,
    OBSERVER,
    PRINCIPAL,
    RECORD,
    STARTED_AT,
    UPSTREAMS,
)
from .tracking import RequestRecord
from .upstream import Upstreams

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
RATE_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("rate_headers")
PUBLIC_PATHS = frozenset({"/health"})
log = logging.getLogger("sparks")


def _wants_trace(request: web.Request) -> bool:
    return request.query.get("include_route_trace", "").lower() in ("1", "true", "yes")


def _error_response(request: web.Request, exc: SparksError) -> web.Response:
    return web.Response(
        status=exc.status,
        body=exc.body_bytes(_wants_trace(request)),
        content_type="application/json",
        headers=exc.headers,
    )


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: request id, the request's record, and its terminal event on every path."""
    request_id = "req_" + secrets.token_hex(12)
    request[REQUEST_ID] = request_id
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    record = RequestRecord(
        request.app[OBSERVER],
        request_id,
        request.method,
        request.path,
        request.headers.get("User-Agent", ""),
    )
    request[RECORD] = record
    try:
        response = await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        if not record.finished:
            record.emit("client.disconnected", after_ms=record.elapsed_ms())
            record.fail(499, "client_disconnected", "the client closed the connection")
        raise
    if not record.finished:
        if response.status >= 500:
            record.fail(response.status, "http_error", response.reason or "")
        elif response.status >= 400:
            record.reject(response.status, "http_error", response.reason or "")
        else:
            record.complete(response.status)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an OpenAI-shaped error; nothing text/plain, no traceback."""
    try:
        return await handler(request)
    except SparksError as exc:
        error = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _from_http_exception(request, exc)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("internal error on %s %s", request.method, request.path)
        error = SparksError(500, "internal_error", f"Internal error ({type(exc).__name__})")
    record = request.get(RECORD)
    if record is not None:
        if error.status >= 500:
            record.fail(error.status, error.code, error.message)
        else:
            record.reject(error.status, error.code, error.message)
    return _error_response(request, error)


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
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host (DNS rebinding), Origin (browsers), CORS preflight and the body size limit."""
    api = request.app[CONFIG].openai_api
    if not host_allowed(request.headers.get("Host"), api.allowed_hosts):
        raise SparksError(
            403,
            "host_not_allowed",
            "Host header is not a loopback name or in openai_api.allowed_hosts",
        )
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, api.allowed_origins):
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
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
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
    return await handler(request)


@web.middleware
async def limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    bucket = request.app[LIMITER]
    if bucket is None or request.path in PUBLIC_PATHS:
        return await handler(request)
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
    return await handler(request)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
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


async def _end_live_streams(app: web.Application) -> None:
    """Live observer subscribers would otherwise hold shutdown for the whole grace period."""
    app[OBSERVER].end_subscriptions()


def create_app(
    config: Config,
    credentials: Credentials,
    *,
    console: TextIO | None = None,
    discover: bool = True,
) -> web.Application:
    """Build the application; long-lived resources open and close in `cleanup_ctx`."""
    app = web.Application(
        middlewares=[
            observe_middleware,
            error_middleware,
            guard_middleware,
            auth_middleware,
            limit_middleware,
        ],
        client_max_size=config.openai_api.max_body_bytes,
        handler_args={"max_field_size": 16384},
    )
    api = config.openai_api
    app[CONFIG] = config
    app[CREDENTIALS] = credentials
    app[STARTED_AT] = time.monotonic()
    app[LIMITER] = (
        TokenBucket(api.requests_per_minute, api.burst) if api.requests_per_minute else None
    )
    app[CATALOG] = Catalog(config)
    app.on_response_prepare.append(_on_prepare)
    app.on_shutdown.append(_end_live_streams)
    app.cleanup_ctx.append(_resources(console, discover))
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id:.+}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", json_endpoint("/completions", streamable=True))
    app.router.add_post("/v1/embeddings", json_endpoint("/embeddings"))
    app.router.add_post("/v1/images/generations", json_endpoint("/images/generations"))
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_get("/v1/aliases", list_aliases)
    app.router.add_get("/v1/providers", list_providers)
    app.router.add_get("/v1/observer/events", observer_events)
    return app


def _resources(
    console: TextIO | None, discover: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        observer = Observer(config.observer, console=console)
        app[OBSERVER] = observer
        session = Upstreams.new_session()
        upstreams = Upstreams(config.backends, session)
        app[UPSTREAMS] = upstreams
        app[GHOSTS] = GhostRunner(config, app[CATALOG], upstreams)
        refresher: asyncio.Task[None] | None = None
        if discover:
            await app[CATALOG].refresh(upstreams)
            refresher = asyncio.create_task(app[CATALOG].refresh_forever(upstreams))
        yield
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await session.close()
        observer.emit(
            "server.stopped",
            bind=config.openai_api.bind,
            version=__version__,
            config_path=config.source,
        )
        observer.close()

    return resources


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    grace_s: float,
    on_started: Callable[[web.Application], None],
) -> None:
    """Run until SIGINT/SIGTERM, then stop accepting and let in-flight requests drain."""
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=grace_s,
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    observer = app[OBSERVER]
    config = app[CONFIG]
    models = [e["id"] for e in app[CATALOG].entries()]
    observer.emit(
        "server.started",
        bind=f"{host}:{port}",
        version=__version__,
        config_path=config.source,
        models=models,
    )
    on_started(app)
    try:
        await stop.wait()
    finally:
        # further signals during the bounded drain are ignored rather than killing mid-write
        print(
            f"sparks: stopping; draining in-flight requests (up to {grace_s:g}s)…",
            file=sys.stderr,
            flush=True,
        )
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
