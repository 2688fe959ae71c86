"""The Python load generator of scripts/bench.py: a bare HTTP/1.1 client on asyncio protocols.

Cheaper per event than an aiohttp client, so on its own core it outpaces a proxy and an upstream
sharing the other. It is the streaming client (streams/s, time to the first event, gaps between
events) and the non-streaming fallback when `wrk` is missing.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench_report import Block

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
EVENT = b"data:"
DONE = b"data: [DONE]"


class ProtocolError(Exception):
    """The response could not be read as HTTP/1.1."""


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[bytes, bytes]
    started: float
    ended: float
    event_times: list[float] = field(default_factory=list)  # arrival of each `data:` line

    @property
    def complete_stream(self) -> bool:
        return DONE in self.body[-64:]


class Connection(asyncio.Protocol):
    """One keep-alive connection; `send` writes a request and resolves with its reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Reply] | None = None
        self._reset()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._until_close and self._head_done:
                self._finish(time.perf_counter())
            else:
                self._waiter.set_exception(ConnectionError("connection closed mid-response"))

    async def send(self, request: bytes, timeout_s: float) -> Reply:
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self._started = time.perf_counter()
        self.transport.write(request)
        async with asyncio.timeout(timeout_s):
            return await self._waiter

    def _reset(self) -> None:
        self._buf = bytearray()
        self._body = bytearray()
        self._head_done = self._until_close = self._chunked = False
        self._left = 0  # body bytes still due: of this chunk (chunked) or of the whole body
        self._status = 0
        self._headers: dict[bytes, bytes] = {}
        self._times: list[float] = []

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._waiter is None or self._waiter.done():
            return  # nothing asked; a server talking out of turn is ignored
        self._buf += data
        try:
            if not self._head_done and not self._parse_head():
                return
            start = len(self._body)
            done = self._parse_chunked() if self._chunked else self._parse_plain()
            fresh = bytes(self._body[max(0, start - len(EVENT) + 1) :])  # events ending here
            if EVENT in fresh:
                self._times.extend(itertools.repeat(now, fresh.count(EVENT)))
            if len(self._body) > MAX_BODY:
                raise ProtocolError("response body too large")
            if done:
                self._finish(now)
        except (ProtocolError, ValueError) as exc:
            self._waiter.set_exception(ProtocolError(str(exc)))
            assert self.transport is not None
            self.transport.close()

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError("response head too large")
            return False
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        self._status = int(rest[:3])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self._headers[name.strip().lower()] = value.strip()
        self._head_done = True
        if b"chunked" in self._headers.get(b"transfer-encoding", b"").lower():
            self._chunked = True
        elif b"content-length" in self._headers:
            self._left = int(self._headers[b"content-length"])
        else:
            self._until_close = True
        return True

    def _parse_plain(self) -> bool:
        self._body += self._buf
        self._buf.clear()
        return not self._until_close and len(self._body) >= self._left

    def _parse_chunked(self) -> bool:
        """Decode what has arrived; True once the last chunk and its trailer are in."""
        buf = self._buf
        while True:
            if self._left > 0:  # inside a chunk's data (+2 for its CRLF)
                take = min(self._left, len(buf))
                if not take:
                    return False
                data_end = min(take, max(0, self._left - 2))
                self._body += buf[:data_end]
                del buf[:take]
                self._left -= take
                continue
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            if size:
                del buf[: line_end + 2]
                self._left = size + 2
                continue
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return False
            del buf[: trailer_end + 4]
            return True

    def _finish(self, now: float) -> None:
        reply = Reply(self._status, bytes(self._body), self._headers, self._started, now)
        reply.event_times = self._times
        assert self._waiter is not None
        self._waiter.set_result(reply)
        if self._headers.get(b"connection", b"").lower() == b"close" and self.transport:
            self.transport.close()


def http_request(url_host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST with a Content-Length."""
    head = [f"POST {path} HTTP/1.1", f"Host: {url_host}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OnReply = Callable[[Reply | None], None]


class Client:
    """Requests to one host:port, each worker on its own keep-alive connection."""

    def __init__(self, host: str, port: int, path: str, body: bytes, headers: dict[str, str]):
        self.host, self.port = host, port
        self.request = http_request(f"{host}:{port}", path, body, headers)

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.host, self.port)
        return conn

    async def run(
        self, concurrency: int, count: int, deadline: float, on_reply: OnReply
    ) -> tuple[int, float]:
        """Up to `count` requests from `concurrency` workers, none started after `deadline`;
        returns (requests issued, wall seconds)."""
        issued = 0

        async def worker() -> None:
            nonlocal issued
            conn: Connection | None = None
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                try:
                    if conn is None or conn.closed:
                        conn = await self.connect()
                    left = max(1.0, deadline - time.perf_counter() + 10.0)
                    on_reply(await conn.send(self.request, left))
                except (OSError, ConnectionError, ProtocolError, TimeoutError):
                    on_reply(None)
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    conn = None
            if conn is not None and conn.transport is not None:
                conn.transport.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return issued, time.perf_counter() - start


async def nonstream_block(client: Client, concurrency: int, count: int, deadline: float) -> Block:
    """Non-streaming requests: latency of each, requests/s, `Server-Timing` when sent."""
    block = Block(generator="python")

    def on_reply(reply: Reply | None) -> None:
        if reply is None or reply.status != 200:
            block.errors += 1
            return
        block.latencies_ms.append((reply.ended - reply.started) * 1000)
        timing = reply.headers.get(b"server-timing", b"")
        if b"sparks;dur=" in timing:
            value = timing.split(b"sparks;dur=")[1].split(b",")[0].split(b";")[0]
            block.server_timing_ms.append(float(value))

    _, block.wall_s = await client.run(concurrency, count, deadline, on_reply)
    block.n = len(block.latencies_ms)
    return block


async def stream_block(
    client: Client, concurrency: int, count: int, deadline: float, gaps: bool = False
) -> Block:
    """Streams to `[DONE]`: time to the first event and to the end, events per stream, and
    with `gaps` the time between consecutive events."""
    block = Block(generator="python")

    def on_reply(reply: Reply | None) -> None:
        if reply is None or reply.status != 200 or not reply.complete_stream:
            block.errors += 1
            return
        times = reply.event_times
        block.latencies_ms.append((reply.ended - reply.started) * 1000)
        block.ttft_ms.append((times[0] - reply.started) * 1000)
        block.events.append(len(times))
        if gaps:
            block.gaps_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(times))

    _, block.wall_s = await client.run(concurrency, count, deadline, on_reply)
    block.n = len(block.latencies_ms)
    return block
