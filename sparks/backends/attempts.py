"""One upstream attempt's record, and the errors a chain's attempts add up to (SPEC §4.2):
the last entry's 4xx as it came, else 502/503/504, with upstream bodies summarised, never raw."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sparks.errors import SparksError
from sparks.routing import Target

ERROR_BODY_BYTES = 64 * 1024
ERROR_MESSAGE_CHARS = 500
ERROR_EXCERPT_CHARS = 160


@dataclass
class Attempt:
    target: Target
    status: int | None = None
    error: str | None = None
    kind: str = "ok"  # ok | connect | timeout | status | invalid | skipped
    latency_ms: float = 0.0
    retry_after: str | None = None
    body: bytes = b""
    content_type: str = ""

    def error_text(self) -> str:
        return summarize_error_body(self.body, self.content_type)

    def trace(self) -> dict[str, Any]:
        return {
            "target": self.target.sparks_id,
            "backend": self.target.backend,
            "upstream_model": self.target.upstream_model,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


def summarize_error_body(body: bytes, content_type: str = "") -> str:
    """An upstream error body in a line: the `error.message` of a JSON error, else the content
    type and a short plain-text excerpt (an HTML page is stripped of its tags), never raw."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _clean(str(error["message"]), ERROR_MESSAGE_CHARS)
        if isinstance(error, str) and error:
            return _clean(error, ERROR_MESSAGE_CHARS)
    kind = content_type.split(";")[0].strip() or "no content type"
    text = body[:ERROR_BODY_BYTES].decode("utf-8", "replace")
    if "html" in kind or text.lstrip()[:1] == "<":
        text = _TAGS.sub(" ", _SCRIPTS.sub(" ", text))
    excerpt = _clean(text, ERROR_EXCERPT_CHARS)
    return f"{kind}, {len(body)} bytes" + (f": {excerpt}" if excerpt else "")


_SCRIPTS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def _clean(text: str, limit: int) -> str:
    """One line of printable text, at most `limit` characters."""
    text = _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def passthrough_error(attempt: Attempt, attempts: list[Attempt]) -> SparksError:
    """An upstream 4xx goes back as it came: status, and the upstream's error object if shaped."""
    status = attempt.status or 502
    headers = {"Retry-After": attempt.retry_after} if attempt.retry_after else {}
    error: dict[str, Any] | None = None
    try:
        data = json.loads(attempt.body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
    except (ValueError, RecursionError):
        pass
    code = str(error.get("code") or f"upstream_{status}") if error else f"upstream_{status}"
    if not code.isprintable() or len(code) > 100:
        code = f"upstream_{status}"
    message = attempt.error_text()
    exc = SparksError(
        status,
        code,
        f"{attempt.target.sparks_id}: {message}",
        param=error["param"] if error and isinstance(error.get("param"), str) else None,
        headers=headers,
    )
    exc.route_trace = [a.trace() for a in attempts]
    return exc


def exhausted_error(attempts: list[Attempt]) -> SparksError:
    """SPEC §4.2: the last entry's 4xx as it came, else 502/503/504."""
    tried = [a for a in attempts if a.kind != "skipped"]
    if not tried:
        exc = SparksError(503, "no_backend", "No backend can serve this model")
        exc.route_trace = [a.trace() for a in attempts]
        return exc
    last = tried[-1]
    if last.kind == "status" and last.status is not None and last.status < 500:
        return passthrough_error(last, attempts)
    reached = [a for a in tried if a.kind != "connect"]
    if reached:  # the last entry that answered (or timed out) decides 4xx / 502 / 504
        last = reached[-1]
        if last.kind == "status" and last.status is not None and last.status < 500:
            return passthrough_error(last, attempts)
    if last.kind == "connect":
        exc = SparksError(503, "upstream_unavailable", last.error or "upstream unreachable")
    elif last.kind == "timeout":
        exc = SparksError(504, "upstream_timeout", last.error or "upstream timed out")
    else:
        detail = last.error or "invalid response"
        exc = SparksError(502, "upstream_error", f"{last.target.sparks_id}: {detail}")
    exc.route_trace = [a.trace() for a in attempts]
    return exc
