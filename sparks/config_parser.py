"""The generic half of config parsing: TOML tables checked against dataclass fields."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from sparks.errors import ConfigError

INLINE_SECRET_KEYS = frozenset({"api_key", "key", "token", "secret", "password"})


class TableParser:
    """Checks TOML tables against frozen dataclasses: unknown keys, types, enums and inline
    secrets are errors naming the file and the dotted key path."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.allow_inline = os.environ.get("SPARKS_ALLOW_INLINE_SECRETS") == "1"

    def error(self, key: str, problem: str) -> ConfigError:
        where = str(self.path) if self.path else "config"
        return ConfigError(f"{where}: {key}: {problem}")

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(key, f"expected a table, got {type(data).__name__}")
        return data

    def dataclass_from(self, cls: type, data: Any, key: str, **fixed: Any) -> Any:
        """Build `cls` from a TOML table, checking every key against the dataclass fields."""
        data = self.table(data, key)
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)} - set(fixed)
        values: dict[str, Any] = dict(fixed)
        for name, raw in data.items():
            path = f"{key}.{name}"
            if name not in names:
                raise self.error(path, "unknown key")
            if name in INLINE_SECRET_KEYS and raw and not self.allow_inline:
                raise self.error(
                    path,
                    "inline secrets are refused; use an env var or `sparks key set` "
                    "(or set SPARKS_ALLOW_INLINE_SECRETS=1)",
                )
            values[name] = self.coerce(hints[name], raw, path)
        return cls(**values)

    def coerce(self, hint: Any, raw: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            inner = next(a for a in args if a is not type(None))
            return self.coerce(inner, raw, path)
        if origin is tuple:
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise self.error(path, "expected a list of strings")
            return tuple(raw)
        if hint is bool:
            if not isinstance(raw, bool):
                raise self.error(path, f"expected true or false, got {raw!r}")
            return raw
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.error(path, f"expected an integer, got {raw!r}")
            if raw < 0:
                raise self.error(path, "must not be negative")
            return raw
        if hint is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise self.error(path, f"expected a number, got {raw!r}")
            if raw < 0:
                raise self.error(path, "must not be negative")
            return float(raw)
        if hint is str:
            if not isinstance(raw, str):
                raise self.error(path, f"expected a string, got {raw!r}")
            return raw
        raise self.error(path, "unsupported value")  # pragma: no cover - schema bug

    def choice(self, value: str, allowed: tuple[str, ...], key: str) -> None:
        if value not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}; got {value!r}")
