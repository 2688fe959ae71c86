"""Host and Origin checks (DNS rebinding, browsers) and CORS headers. Pure functions."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key, X-Request-Id, OpenAI-Organization"
CORS_EXPOSE_HEADERS = (
    "X-Request-Id, X-Sparks-Route, X-Sparks-Fallback-From, Server-Timing, Retry-After, "
    "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests"
)


def host_name(host_header: str) -> str:
    """`127.0.0.1:8787` → `127.0.0.1`, `[::1]:8787` → `::1`, `Example.COM` → `example.com`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def _loopback_host_header(host_header: str) -> bool:
    return is_loopback_host(host_name(host_header))


def host_allowed(host_header: str | None, allowed_hosts: Iterable[str]) -> bool:
    """Loopback addresses, `localhost`, `*.localhost` (any port) and the configured host names."""
    if not host_header:
        return False
    if _loopback_host_header(host_header):  # cached: clients send the same Host every time
        return True
    return host_name(host_header) in {h.lower().rstrip(".") for h in allowed_hosts}


def origin_allowed(origin: str, allowed_origins: Iterable[str]) -> bool:
    """Exact scheme://host[:port] match; never a wildcard, never the opaque `null` origin."""
    normalized = origin.strip().rstrip("/").lower()
    if not normalized or normalized == "null":
        return False
    return normalized in {o.strip().rstrip("/").lower() for o in allowed_origins}


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "false",
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str) -> dict[str, str]:
    headers = cors_headers(origin)
    headers.update(
        {
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
        }
    )
    return headers
