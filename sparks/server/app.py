"""The aiohttp application: routes, app state, lifecycle, and `run()` for `sparks serve`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from aiohttp import web

from sparks import __version__
from sparks.auth import Credentials
from sparks.backends.catalog import Catalog
from sparks.backends.upstream import Upstreams
from sparks.config import Config
from sparks.limiter import TokenBucket
from sparks.observe.metrics import RequestMetrics
from sparks.observe.observer import Observer
from sparks.pipeline.ghost_answer import Ghosts
from sparks.pipeline.serve import Pipeline
from sparks.server import catalog_views, chat, endpoints, messages, metrics_view, responses
from sparks.server.live_events import observer_events
from sparks.server.middlewares import MIDDLEWARES, on_prepare
from sparks.server.state import (
    CATALOG,
    CONFIG,
    CREDENTIALS,
    LIMITER,
    METRICS,
    OBSERVER,
    PIPELINE,
    REQUEST_IDS,
    STARTED_AT,
    UPSTREAMS,
)
from sparks.server.ui import setup_ui

HEADER_FIELD_LIMIT = 16384


def create_app(
    config: Config,
    credentials: Credentials,
    *,
    console: TextIO | None = None,
    discover: bool = True,
) -> web.Application:
    """Build the application; long-lived resources open and close in `cleanup_ctx`."""
    app = web.Application(
        middlewares=MIDDLEWARES,
        client_max_size=config.openai_api.max_body_bytes,
        handler_args={"max_field_size": HEADER_FIELD_LIMIT},
    )
    api = config.openai_api
    app[CONFIG] = config
    app[CREDENTIALS] = credentials
    app[STARTED_AT] = time.monotonic()
    app[REQUEST_IDS] = request_ids()
    app[LIMITER] = (
        TokenBucket(api.requests_per_minute, api.burst) if api.requests_per_minute else None
    )
    catalog = app[CATALOG] = Catalog(config)
    app[METRICS] = RequestMetrics(lambda: catalog.table.exact, __version__)
    if config.observer.otlp.endpoint:
        from sparks.observe.otlp import check_installed

        check_installed()  # a StartupError now rather than a traceback at the first request
    app.on_response_prepare.append(on_prepare)
    app.on_shutdown.append(_end_live_streams)
    app.cleanup_ctx.append(_resources(console, discover))
    router = app.router
    router.add_get("/health", catalog_views.health)
    router.add_get("/", catalog_views.health)  # public: Claude Code probes HEAD / (§9.2)
    router.add_get("/v1/models", catalog_views.list_models)
    router.add_get("/v1/models/{model_id:.+}", catalog_views.get_model)
    router.add_get("/v1/aliases", catalog_views.list_aliases)
    router.add_get("/v1/providers", catalog_views.list_providers)
    router.add_post("/v1/chat/completions", chat.chat_completions)
    responses.add_routes(app)  # POST /v1/responses, GET/DELETE /v1/responses/{id}, input_items
    router.add_post("/v1/messages", messages.messages)  # Anthropic Messages, SPEC §9.2
    router.add_post("/v1/messages/count_tokens", messages.count_tokens)
    router.add_post("/v1/completions", endpoints.json_endpoint("/completions", streamable=True))
    router.add_post("/v1/embeddings", endpoints.json_endpoint("/embeddings"))
    router.add_post("/v1/images/generations", endpoints.json_endpoint("/images/generations"))
    router.add_post("/v1/audio/speech", endpoints.speech)
    router.add_post("/v1/audio/transcriptions", endpoints.transcriptions)
    router.add_get("/v1/observer/events", observer_events)
    router.add_get("/metrics", metrics_view.metrics)
    setup_ui(app)
    return app


def request_ids() -> Callable[[], str]:
    """`req_` + 24 hex digits: a random per-process prefix and a counter, unique without an
    os.urandom call per request (ids name requests; they are not secrets)."""
    prefix = "req_" + secrets.token_hex(6)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


async def _end_live_streams(app: web.Application) -> None:
    """Live observer subscribers would otherwise hold shutdown for the whole grace period."""
    app[OBSERVER].end_subscriptions()


def _resources(
    console: TextIO | None, discover: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        observer = Observer(config.observer, console=console)
        app[OBSERVER] = observer
        observer.listeners.append(app[METRICS].observe)
        traces = None
        if config.observer.otlp.endpoint:
            from sparks.observe.otlp import RequestTraces

            traces = RequestTraces.start(config, __version__)
            observer.listeners.append(traces.observe)
        session = Upstreams.new_session()
        upstreams = Upstreams(config.backends, session)
        app[UPSTREAMS] = upstreams
        catalog = app[CATALOG]
        ghosts = Ghosts(config, catalog, upstreams)
        app[PIPELINE] = Pipeline(catalog, upstreams, ghosts, config.observer.log_content)
        refresher: asyncio.Task[None] | None = None
        if discover:
            await catalog.refresh(upstreams)
            refresher = asyncio.create_task(catalog.refresh_forever(upstreams))
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
        if traces is not None:
            await traces.aclose()

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
        keepalive_timeout=idle_limit(app[CONFIG].openai_api.header_timeout_s),
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
    config = app[CONFIG]
    app[OBSERVER].emit(
        "server.started",
        bind=f"{host}:{port}",
        version=__version__,
        config_path=config.source,
        models=[e["id"] for e in app[CATALOG].entries()],
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


def idle_limit(header_timeout_s: float) -> float:
    """aiohttp closes a connection that has not delivered a complete request within its
    keep-alive timeout (counted from the connection's start, or from its last response), which
    is the header read timeout Sparks wants; 0 means aiohttp's own hour-long default."""
    return header_timeout_s or 3630.0


def with_bind(config: Config, bind: str | None) -> Config:
    """`--bind` over `openai_api.bind`; a non-loopback bind host is also an allowed Host."""
    from sparks.security import is_loopback_host

    api = config.openai_api
    if bind:
        api = dataclasses.replace(api, bind=bind)
    if api.host not in api.allowed_hosts and not is_loopback_host(api.host):
        api = dataclasses.replace(api, allowed_hosts=(*api.allowed_hosts, api.host))
    return dataclasses.replace(config, openai_api=api)
