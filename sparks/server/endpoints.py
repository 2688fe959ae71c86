"""The non-chat OpenAI endpoints (SPEC §4.7), served by the same pipeline as chat.

JSON endpoints get `model` rewritten in the answer; binary and multipart ones stream through:
an uploaded file is spooled to a private temporary file (never held whole in memory) so each
fallback attempt can stream it again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from sparks.errors import invalid_value, missing_field
from sparks.pipeline.serve import Call
from sparks.protocol import parse_json_object, require_model, stream_flags
from sparks.routing import Target
from sparks.server.body import request_bytes
from sparks.server.state import PIPELINE, RECORD, RESPONDER

COPY_CHUNK = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_endpoint(path: str, streamable: bool = False) -> Handler:
    """POST handler for a JSON-in endpoint: embeddings, completions, images/generations."""
    api = path.strip("/").replace("/", ".")

    async def handler(request: web.Request) -> web.StreamResponse:
        body = parse_json_object(await request_bytes(request))
        model = require_model(body)
        stream, include_usage = stream_flags(body) if streamable else (False, False)
        request[RECORD].received(model, stream, api=api)
        call = Call(path, model, body, stream=stream, include_usage=include_usage)
        return await request.app[PIPELINE].serve(request[RESPONDER], call)

    return handler


async def speech(request: web.Request) -> web.StreamResponse:
    """POST /v1/audio/speech: JSON in, audio bytes streamed back as they arrive."""
    body = parse_json_object(await request_bytes(request))
    model = require_model(body)
    request[RECORD].received(model, True, api="audio.speech")
    call = Call("/audio/speech", model, body, raw=True)
    return await request.app[PIPELINE].serve(request[RESPONDER], call)


async def transcriptions(request: web.Request) -> web.StreamResponse:
    """POST /v1/audio/transcriptions: multipart with a `model` field and one `file`."""
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
        require_model({"model": model})
        request[RECORD].received(model, False, api="audio.transcriptions")
        call = Call(
            "/audio/transcriptions", model, {}, raw=True, form=_form_factory(fields, upload)
        )
        return await request.app[PIPELINE].serve(request[RESPONDER], call)
    finally:
        if upload is not None:
            upload.discard()


def _form_factory(
    fields: list[tuple[str, str]], upload: _Upload
) -> Callable[[Target], aiohttp.FormData]:
    def make_form(target: Target) -> aiohttp.FormData:
        """A fresh form per attempt; aiohttp streams the file from disk and closes it."""
        form = aiohttp.FormData()
        for key, value in fields:
            form.add_field(key, target.upstream_model if key == "model" else value)
        form.add_field(
            upload.field,
            upload.path.open("rb"),
            filename=upload.filename,
            content_type=upload.content_type,
        )
        return form

    return make_form


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
