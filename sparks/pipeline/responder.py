"""The client's response: JSON, SSE or raw bytes, and the request's one terminal event.

The responder knows whether the response has started. Before, a failure is an ordinary JSON
error; after, it ends the stream with an error event and `[DONE]` (never a second HTTP
response). It is the only writer of `request.completed` / `request.failed` /
`request.rejected` (SPEC §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from sparks import jsonfast
from sparks.errors import SparksError, error_body
from sparks.observe.record import RequestRecord
from sparks.pipeline.answer import Answer
from sparks.pipeline.front import Front
from sparks.pipeline.sse import StreamBroken
from sparks.protocol import DONE_EVENT, sse_event

CLIENT_WRITE_TIMEOUT_S = 120.0  # a client that reads nothing for this long is cut off
UNTIMED_WRITE_BYTES = 16 * 1024  # well under asyncio's 64 KiB high-water mark
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def header_safe(value: str) -> bool:
    """No control characters: a value that could split or break a header line is left out."""
    return value.isprintable()


class Responder:
    """One per request, made by the outermost middleware."""

    __slots__ = ("front", "include_trace", "record", "request", "response")

    def __init__(self, request: web.Request, record: RequestRecord, include_trace: bool) -> None:
        self.request = request
        self.record = record
        self.include_trace = include_trace
        self.response: web.StreamResponse | None = None
        self.front: Front | None = None  # set by a Responses / Messages handler

    @property
    def started(self) -> bool:
        return self.response is not None and self.response.prepared

    def headers_for(self, answer: Answer) -> dict[str, str]:
        """Route headers plus Server-Timing: Sparks' own time, the upstream's, the ghost tools'."""
        record = self.record
        tools_ms = record.tools_ms
        own = max(0.0, record.elapsed_ms() - record.upstream_ms - (tools_ms or 0.0))
        timing = f"sparks;dur={own:.2f}, upstream;dur={record.upstream_ms:.2f}"
        if tools_ms is not None:
            timing += f", tools;dur={tools_ms:.2f}"
        headers = {k: v for k, v in answer.headers.items() if header_safe(v)}
        headers["Server-Timing"] = timing
        return headers

    async def answer(self, answer: Answer) -> web.StreamResponse:
        self.record.served_model = answer.served_model
        front = self.front
        try:
            if answer.events is not None:
                events = answer.events
                if front is not None and not answer.native:
                    events = front.answer_events(events, answer.served_model)
                async with contextlib.aclosing(events) as closing:
                    return await self._stream(answer, closing)
            if answer.body is not None:
                async with contextlib.aclosing(answer.body) as body:
                    return await self._bytes(answer, body)
            payload = answer.payload
            if front is not None and not answer.native:
                payload = front.answer_json(payload, answer.served_model)
            self.record.complete(200, content=answer.content)
            return web.Response(
                body=jsonfast.dumps(payload),
                content_type="application/json",
                headers=self.headers_for(answer),
            )
        finally:
            answer.close()

    async def _stream(self, answer: Answer, events: Any) -> web.StreamResponse:
        """SSE: headers go out with the first event, so a failure before it is a JSON error.
        Server-Timing covers the work up to those headers (SPEC §4.1); a backend's wait for its
        first event is the upstream's time, not Sparks'."""
        waiting = time.perf_counter()
        try:
            first: bytes | None = await anext(events)
        except StopAsyncIteration:
            first = None
        except StreamBroken as exc:
            raise SparksError(502, "upstream_error", f"{answer.served_model}: {exc}") from None
        if self.record.tools_ms is None:  # a backend (a ghost counts its model calls itself)
            self.record.upstream_ms += (time.perf_counter() - waiting) * 1000
        headers = {**SSE_HEADERS, **self.headers_for(answer)}
        response = self.response = web.StreamResponse(headers=headers)
        await response.prepare(self.request)
        failure: SparksError | None = None
        try:
            if first is not None:
                self.record.mark_first_byte()
                await self._write(first)
            async for event in events:
                await self._write(event)
        except StreamBroken as exc:
            failure = SparksError(502, "upstream_error", f"{answer.served_model}: {exc}")
        except SparksError as exc:
            failure = exc
        except TimeoutError:
            self.record.fail(
                200, "client_stalled", "the client stopped reading past the write timeout"
            )
            if self.request.transport is not None:
                self.request.transport.close()
            return response
        if failure is not None:
            return await self._end_stream(failure)
        self.record.complete(200, content=answer.content)
        end = DONE_EVENT if self.front is None else self.front.stream_end()
        if end:
            await response.write(end)
        return response

    async def _write(self, data: bytes) -> None:
        """A write can only wait when the client has left bytes unread: only then is it
        bounded by a timer (one per write would cost more than the write itself)."""
        assert self.response is not None
        transport = self.request.transport
        if (
            len(data) < UNTIMED_WRITE_BYTES
            and transport is not None
            and not transport.get_write_buffer_size()
        ):
            await self.response.write(data)  # cannot fill the buffer past its high-water mark
            return
        async with asyncio.timeout(CLIENT_WRITE_TIMEOUT_S):
            await self.response.write(data)

    async def _bytes(self, answer: Answer, body: Any) -> web.StreamResponse:
        """Raw bytes as they arrive; a break after the start aborts the connection, so the
        client cannot mistake a cut body for a whole one."""
        response = self.response = web.StreamResponse(
            headers={"Content-Type": answer.content_type, **self.headers_for(answer)}
        )
        await response.prepare(self.request)
        try:
            async for data in body:
                self.record.mark_first_byte()
                await self._write(data)
        except StreamBroken as exc:
            self.record.fail(200, "upstream_error", str(exc))
            if self.request.transport is not None:
                self.request.transport.close()
            return response
        self.record.complete(200)
        await response.write_eof()
        return response

    async def _end_stream(self, error: SparksError) -> web.StreamResponse:
        """A failure after the start: one error event and `[DONE]`, recorded as failed."""
        assert self.response is not None
        self.record.fail(200, error.code, error.message)
        if self.front is not None:
            ending = self.front.stream_error(error) + self.front.stream_end()
        else:
            body = error_body(error.status, error.code, error.message, error.param)
            ending = sse_event(body) + DONE_EVENT
        with contextlib.suppress(ConnectionError, TimeoutError, RuntimeError):
            async with asyncio.timeout(CLIENT_WRITE_TIMEOUT_S):
                await self.response.write(ending)
        return self.response

    async def error(self, error: SparksError) -> web.StreamResponse:
        """The response for a failure anywhere in the request, started or not."""
        if self.started:
            return await self._end_stream(error)
        if error.status >= 500:
            self.record.fail(error.status, error.code, error.message)
        else:
            self.record.reject(error.status, error.code, error.message)
        if self.front is not None:
            body = self.front.error_body(error, self.include_trace)
        else:
            body = error.body_bytes(self.include_trace)
        return web.Response(
            status=error.status,
            body=body,
            content_type="application/json",
            headers={k: v for k, v in error.headers.items() if header_safe(v)},
        )

    def finish(self, response: web.StreamResponse) -> None:
        """A handler's own response (catalog views, live events): its status decides the event."""
        if self.record.finished:
            return
        if response.status >= 500:
            self.record.fail(response.status, "http_error", response.reason or "")
        elif response.status >= 400:
            self.record.reject(response.status, "http_error", response.reason or "")
        else:
            self.record.complete(response.status)

    def disconnected(self) -> None:
        if not self.record.finished:
            self.record.emit("client.disconnected", after_ms=self.record.elapsed_ms())
            self.record.fail(499, "client_disconnected", "the client closed the connection")
