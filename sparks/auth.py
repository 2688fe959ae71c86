"""Bearer-key checks (SPEC §3). Knows keys and principals, not where keys come from."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping


class Credentials:
    """Accepted keys → principals, compared in constant time against every key."""

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._keys = [(key.encode(), principal) for key, principal in keys if key]

    def __len__(self) -> int:
        return len(self._keys)

    def principal_for(self, presented: str | None) -> str | None:
        if not presented:
            return None
        candidate = presented.encode()
        match: str | None = None
        for key, principal in self._keys:
            # compare against every key so timing does not reveal which one (or none) matched
            if hmac.compare_digest(candidate, key) and match is None:
                match = principal
        return match


def presented_key(headers: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <key>`, or `x-api-key: <key>` as some clients send."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key else None
