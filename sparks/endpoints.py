"""The non-chat OpenAI endpoints (SPEC §4.7), routed like chat to backend models with fallback.

JSON endpoints get `model` rewritten in the answer; binary and multipart ones stream through:
an uploaded file is spooled to a private temporary file (never held whole in memory) so each
fallback attempt can stream it again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import jsonfast
from .errors import SparksError, invalid_value, missing_field, model_not_found
from .protocol import parse_json_object, read_body, require_model, stream_flags
from .relay import json_answer, route_headers, stream_answer
from .routing import CLASSIFY_ID, LOCAL_SUFFIX, Route, Target
from .state import CATALOG, RECORD, UPSTREAMS

COPY_CHUNK = 64 * 1024


def _backend_chain(route: Route) -> tuple[Target, ...]:
    base = route.model.removesuffix(LOCAL_SUFFIX)
    if route.kind == "classify" and base != CLASSIFY_ID:
        raise model_not_found(route.model)  # unknown ids only mean "a ghost" on chat
    if route.kind in ("classify", "ghost") or (route.chain and route.chain[0].ghost):
        raise SparksError(
            400,
            "unsupported_for_ghost",
            f"'{route.model}' is a ghost; ghosts only answer /v1/chat/completions",
            param="model",
        )
    chain = tuple(t for t in route.chain if t.backend)
    if not chain:
        raise SparksError(503, "no_backend", f"No backend can serve '{route.model}'", param="model")
    return chain


def _emit_route(request: web.Request, route: Route, chain: tuple[Target, ...]) -> None:
    request[RECORD].emit(
        "route.resolved",
        model=route.model,
        kind=route.kind,
        target=chain[0].sparks_id,
        chain=[t.sparks_id for t in chain] if route.kind == "alias" else None,
        ghost=None,
        classifier=None,
    )


def json_endpoint(path: str, streamable: bool = False) -> Callable[..., Any]:
    """POST handler for a JSON-in endpoint: embeddings, completions, images/generations."""

    async def handler(request: web.Request) -> web.StreamResponse:
        record = request[RECORD]
        body = parse_json_object(await read_body(request.read()))
        model = require_model(body)
        stream, include_usage = stream_flags(body) if streamable else (False, False)
        record.received(model, stream)
        catalog = request.app[CATALOG]
        route = catalog.table.resolve(model)
        chain = _backend_chain(route)
        _emit_route(request, route, chain)

        def make_body(target: Target) -> bytes:
            out = {**body, "model": target.upstream_model}
            if stream:
                out["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
            return jsonfast.dumps(out)

        served = await request.app[UPSTREAMS].open_chain(
            chain, path, make_body, record, stream=stream
        )
        catalog.note_use(route, served.target)
        if stream:
            return await stream_answer(request, catalog, served, record, include_usage)
        trace = request.query.get("include_route_trace", "").lower() in ("1", "true", "yes")
        return json_answer(catalog, served, record, trace)

    return handler


async def speech(request: web.Request) -> web.StreamResponse:
    """POST /v1/audio/speech: JSON in, audio bytes streamed back as they arrive."""
    record = request[RECORD]
    body = parse_json_object(await read_body(request.read()))
    model = require_model(body)
    record.received(model, False)
    route = request.app[CATALOG].table.resolve(model)
    chain = _backend_chain(route)
    _emit_route(request, route, chain)

    def make_body(target: Target) -> bytes:
        return jsonfast.dumps({**body, "model": target.upstream_model})

    served = await request.app[UPSTREAMS].open_chain(
        chain, "/audio/speech", make_body, record, stream=False, raw=True
    )
    request.app[CATALOG].note_use(route, served.target)
    return await _raw_answer(request, served, record)


async def transcriptions(request: web.Request) -> web.StreamResponse:
    """POST /v1/audio/transcriptions: multipart with a `model` field and one `file`."""
    record = request[RECORD]
    if not request.content_type.startswith("multipart/"):
        raise invalid_value("file", "send multipart/form-data with 'file' and 'model' fields")
    fields: list[tuple[str, str]] = []
    upload: _Upload | None = None
    try:
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                    continue
                if part.filename is None:
                    fields.append((part.name, (await part.read()).decode("utf-8", "replace")))
                    continue
                if upload is not None:
                    raise invalid_value(part.name, "send exactly one file part")
                upload = _Upload(part.name, part.filename, part.headers.get("Content-Type"))
                await upload.spool(part)
        except ValueError as exc:
            raise invalid_value("file", f"malformed multipart body: {exc}") from None
        model = next((v for k, v in fields if k == "model"), None)
        if not model:
            raise missing_field("model")
        if upload is None:
            raise missing_field("file")
        record.received(model, False)
        route = request.app[CATALOG].table.resolve(model)
        chain = _backend_chain(route)
        _emit_route(request, route, chain)
        sent = upload

        def make_form(target: Target) -> aiohttp.FormData:
            """A fresh form per attempt; aiohttp streams the file from disk and closes it."""
            form = aiohttp.FormData()
            for key, value in fields:
                form.add_field(key, target.upstream_model if key == "model" else value)
            form.add_field(
                sent.field,
                sent.path.open("rb"),
                filename=sent.filename,
                content_type=sent.content_type,
            )
            return form

        served = await request.app[UPSTREAMS].open_chain(
            chain, "/audio/transcriptions", make_form, record, stream=False, raw=True
        )
        request.app[CATALOG].note_use(route, served.target)
        return await _raw_answer(request, served, record)
    finally:
        if upload is not None:
            upload.discard()


class _Upload:
    """One uploaded file spooled to a private temp file, removed whatever happens."""

    def __init__(self, field: str, filename: str, content_type: str | None) -> None:
        self.field = field
        self.filename = filename
        self.content_type = content_type or "application/octet-stream"
        handle, name = tempfile.mkstemp(prefix="sparks-upload-")
        os.close(handle)
        self.path = Path(name)

    async def spool(self, part: aiohttp.BodyPartReader) -> None:
        with self.path.open("wb") as out:
            while chunk := await part.read_chunk(COPY_CHUNK):
                out.write(chunk)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def _raw_answer(request: web.Request, served: Any, record: Any) -> web.StreamResponse:
    record.served_model = served.target.sparks_id
    record.fallback_from = served.fallback_from
    upstream = served.response
    response = web.StreamResponse(
        headers={
            "Content-Type": upstream.headers.get("Content-Type", "application/octet-stream"),
            **route_headers(served, record),
        }
    )
    try:
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                record.mark_first_byte()
                await response.write(chunk)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError) as exc:
            record.fail(200, "upstream_error", f"upstream body broke: {type(exc).__name__}")
            if request.transport is not None:  # abort, so the client cannot mistake it for whole
                request.transport.close()
            return response
        record.complete(200)
        await response.write_eof()
    finally:
        served.close()
    return response
