"""JSON on the request path: orjson when installed (`pip install 'sparks[fast]'`), else the
standard library with compact separators. Both produce compact UTF-8 JSON."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

DecodeError: tuple[type[Exception], ...] = (ValueError, UnicodeDecodeError)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson's error is a ValueError too)."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, integers beyond 64 bits: the standard library decides
    return json.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes; objects JSON cannot hold are rendered with str()."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=str)
        except TypeError:  # e.g. integers beyond 64 bits
            pass
    return _ENCODER.encode(obj).encode()
