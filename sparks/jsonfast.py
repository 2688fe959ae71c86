"""JSON on the request path: orjson (a dependency), else the
standard library with compact separators. Both produce compact UTF-8 JSON, and both refuse the
same inputs: anything nested deeper than MAX_DEPTH levels raises ValueError."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

MAX_DEPTH = 128  # documented in docs/api.md; far beyond any real request (schemas nest ~10)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson's error is a ValueError too, and so is TooDeep)."""
    value: Any = _MISSING
    if orjson is not None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, integers beyond 64 bits, deep nesting: the standard library decides
    if value is _MISSING:
        try:
            value = json.loads(data)
        except RecursionError:
            raise TooDeep() from None
    if _may_be_deep(data) and _depth_exceeds(value, MAX_DEPTH):
        raise TooDeep()
    return value


_MISSING = object()


def _may_be_deep(data: bytes | str) -> bool:
    """Cheap filter: nesting deeper than MAX_DEPTH needs more than MAX_DEPTH open brackets."""
    if isinstance(data, str):
        return data.count("[") + data.count("{") > MAX_DEPTH
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes; objects JSON cannot hold are rendered with str()."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=str)
        except TypeError:  # e.g. integers beyond 64 bits
            pass
    return _ENCODER.encode(obj).encode()
