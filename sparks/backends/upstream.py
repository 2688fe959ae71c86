"""Calls to backends over one pooled ClientSession, with the fallback rules of SPEC §4.2.

Routing decides *which* targets; this module only tries them in order and reports what happened.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from sparks import jsonfast
from sparks.backends.attempts import (
    ERROR_BODY_BYTES,
    Attempt,
    exhausted_error,
    passthrough_error,
)
from sparks.backends.watchdog import IdleWatchdog
from sparks.config import BackendConfig
from sparks.keys import find_backend_key
from sparks.observe.record import RequestRecord
from sparks.routing import Target

MAX_JSON_BYTES = 64 * 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 429})


@dataclass
class Served:
    """The winning attempt: an open streaming response, or a parsed JSON body."""

    target: Target
    attempts: list[Attempt]
    upstream_ms: float
    response: aiohttp.ClientResponse | None = None
    payload: Any = None
    idle_timeout_s: float | None = None  # longest silence allowed in an open body

    def watchdog(self) -> IdleWatchdog | None:
        """The one idle timer for reading this open body (None without a limit)."""
        if self.response is None or not self.idle_timeout_s:
            return None
        return IdleWatchdog(self.idle_timeout_s, self.response.close)

    @property
    def fallback_from(self) -> str | None:
        first = self.attempts[0].target.sparks_id
        return first if first != self.target.sparks_id else None

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


@dataclass
class BackendHealth:
    reachable: bool | None = None
    last_error: str | None = None
    cooldown_until: float = 0.0  # monotonic; skipped in chains until then

    def cooldown_left(self, now: float | None = None) -> float:
        left = self.cooldown_until - (time.monotonic() if now is None else now)
        return round(left, 1) if left > 0 else 0.0


BodyFactory = Callable[[Target], bytes | aiohttp.FormData]


class Upstreams:
    """The pooled upstream client; `open_chain` runs a fallback chain."""

    def __init__(self, backends: Mapping[str, BackendConfig], session: aiohttp.ClientSession):
        self.backends = backends
        self.session = session
        self.health: dict[str, BackendHealth] = {name: BackendHealth() for name in backends}
        self._auth: dict[str, dict[str, str]] = {}
        self._timeouts: dict[tuple[str, bool], aiohttp.ClientTimeout] = {}
        for name, backend in backends.items():
            self._auth[name] = auth_headers(backend.api, find_backend_key(backend))

    @staticmethod
    def new_session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=0, keepalive_timeout=30)
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            json_serialize=json.dumps,
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": "sparks"},
        )

    def timeout_for(self, backend: BackendConfig, open_body: bool) -> aiohttp.ClientTimeout:
        """An answer read whole keeps aiohttp's per-read timer; one kept open (a stream) is
        bounded by a deadline for its headers and then by the reader's one IdleWatchdog."""
        key = (backend.name, open_body)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                sock_connect=backend.connect_timeout_s,
                sock_read=None if open_body else (backend.timeout_s or None),
            )
        return timeout

    async def get_json(self, backend: BackendConfig, path: str, timeout_s: float) -> Any:
        """A short GET (model discovery, doctor); raises aiohttp/ValueError on failure."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.get(
            backend.base_url + path, headers=self._auth[backend.name], timeout=timeout
        ) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def open_chain(
        self,
        chain: tuple[Target, ...],
        path: str | Callable[[Target], str],
        make_body: BodyFactory,
        record: RequestRecord,
        *,
        stream: bool,
        raw: bool = False,
    ) -> Served:
        """Try each target in order until one answers; raise the SPEC §4.2 error when none does.

        `stream`/`raw` keep the winning response open for the caller (SSE, or any bytes)."""
        attempts: list[Attempt] = []
        cooling = self._cooling(chain)
        for number, target in enumerate(chain, start=1):
            if target.sparks_id in cooling:
                left = self.health[target.backend or ""].cooldown_left()
                skipped = Attempt(
                    target, kind="skipped", error=f"skipped: cooling down ({left}s left)"
                )
                attempts.append(skipped)
                _emit_attempt(record, skipped, number)
                continue
            target_path = path(target) if callable(path) else path
            attempt, served = await self._attempt(
                target, target_path, make_body(target), stream, raw
            )
            attempts.append(attempt)
            _emit_attempt(record, attempt, number)
            self._note_health(target, attempt)
            if served is not None:
                served.attempts = attempts
                served.upstream_ms = round(sum(a.latency_ms for a in attempts), 2)
                return served
            if attempt.kind == "status" and not _retryable(attempt.status):
                raise passthrough_error(attempt, attempts)
        raise exhausted_error(attempts)

    async def _attempt(
        self,
        target: Target,
        path: str,
        body: bytes | aiohttp.FormData,
        stream: bool,
        raw: bool = False,
    ) -> tuple[Attempt, Served | None]:
        backend = self.backends[target.backend or ""]
        attempt = Attempt(target)
        headers = dict(self._auth[backend.name])
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        try:
            post = self.session.post(
                backend.base_url + path,
                data=body,
                headers=headers,
                timeout=self.timeout_for(backend, stream or raw),
            )
            if stream or raw:  # an open body has no per-read timer: bound its headers here
                async with asyncio.timeout(backend.timeout_s or None):
                    response = await post
            else:
                response = await post
            attempt.status = response.status
            if response.status >= 400:
                attempt.kind = "status"
                attempt.body = await _read_capped(response, ERROR_BODY_BYTES, strict=False)
                attempt.retry_after = response.headers.get("Retry-After")
                attempt.content_type = response.headers.get("Content-Type", "")
                attempt.error = f"HTTP {response.status}: {attempt.error_text()}"
                response.close()
                return _finish(attempt, start), None
            if stream or raw:
                served = Served(
                    target, [], 0.0, response=response, idle_timeout_s=backend.timeout_s or None
                )
                _finish(attempt, start)
                served.upstream_ms = attempt.latency_ms
                return attempt, served
            raw = await _read_capped(response, MAX_JSON_BYTES, strict=True)
            payload = _parse_payload(raw, response.headers.get("Content-Type", ""))
            response.release()
            _finish(attempt, start)
            return attempt, Served(target, [], attempt.latency_ms, payload=payload)
        except _Invalid as exc:
            attempt.kind, attempt.error = "invalid", str(exc)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            attempt.kind, attempt.error = "connect", _connect_text(backend, exc)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            attempt.kind = "timeout"
            attempt.error = f"no answer from {backend.name} within {backend.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            attempt.kind = "invalid"
            attempt.error = f"{type(exc).__name__}: {exc}"
        except BaseException:
            if response is not None:
                response.close()
            raise
        if response is not None:
            response.close()
        return _finish(attempt, start), None

    def _cooling(self, chain: tuple[Target, ...]) -> set[str]:
        """Targets to skip: those whose backend is cooling down, unless every one of them is
        (then all are tried, so a chain of one never fails without trying)."""
        now = time.monotonic()
        cooling = {
            t.sparks_id
            for t in chain
            if t.backend in self.health and self.health[t.backend].cooldown_until > now
        }
        return set() if len(cooling) == len(chain) else cooling

    def _note_health(self, target: Target, attempt: Attempt) -> None:
        health = self.health.get(target.backend or "")
        if health is None:
            return
        if attempt.kind == "ok" or (attempt.kind == "status" and (attempt.status or 0) < 500):
            health.reachable, health.last_error = True, None
            health.cooldown_until = 0.0
            return
        health.last_error = attempt.error
        health.reachable = attempt.kind != "connect"
        if attempt.kind in ("connect", "timeout"):
            cooldown = self.backends[target.backend or ""].cooldown_s
            health.cooldown_until = time.monotonic() + cooldown


ANTHROPIC_VERSION = "2023-06-01"


def auth_headers(api: str, key: Any) -> dict[str, str]:
    """How a backend wants its key: Anthropic's API takes `x-api-key` and a version header
    (SPEC §9: `api = "anthropic"` backends); everything else a bearer token."""
    if api == "anthropic":
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key.key
        return headers
    return {"Authorization": f"Bearer {key.key}"} if key else {}


async def _read_capped(response: aiohttp.ClientResponse, cap: int, strict: bool) -> bytes:
    """The whole body up to `cap` bytes; past it, `strict` raises (answers), else truncates
    (error texts). `content.read(n)` alone would stop at whatever has arrived so far."""
    length = response.content_length
    if strict and length is not None and length > cap:
        raise _Invalid(f"response body of {length} bytes is larger than {cap}")
    parts: list[bytes] = []
    size = 0
    async for data in response.content.iter_chunked(256 * 1024):
        parts.append(data)
        size += len(data)
        if size > cap:
            if strict:
                raise _Invalid(f"response body larger than {cap} bytes")
            break
    return b"".join(parts)[:cap]


def _emit_attempt(record: RequestRecord, attempt: Attempt, number: int) -> None:
    if attempt.kind != "skipped":
        record.upstream_calls += 1
    record.emit(
        "upstream.attempt",
        backend=attempt.target.backend,
        upstream_model=attempt.target.upstream_model,
        attempt=number,
        status=attempt.status,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
    )


class _Invalid(Exception):
    pass


def _finish(attempt: Attempt, start: float) -> Attempt:
    attempt.latency_ms = round((time.perf_counter() - start) * 1000, 2)
    return attempt


def _retryable(status: int | None) -> bool:
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def _parse_payload(raw: bytes, content_type: str) -> Any:
    if "json" not in content_type and not raw.lstrip().startswith((b"{", b"[")):
        kind = content_type.split(";")[0] or "no content type"
        raise _Invalid(f"expected JSON, got {kind} ({len(raw)} bytes)")
    try:
        return jsonfast.loads(raw)
    except ValueError as exc:
        raise _Invalid(f"invalid JSON from upstream: {exc}") from None


def _connect_text(backend: BackendConfig, exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return f"cannot connect to {backend.name} at {backend.base_url}: {reason}"
