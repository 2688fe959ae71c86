"""One-time login codes and dashboard sessions (SPEC §10.1), in memory. Pure: takes a clock.

A code is minted by `sparks ui` (authenticated with the main key), works once, and expires after
`CODE_TTL_S`; trading it gives a session token for the HttpOnly cookie. Only SHA-256 digests of
codes and tokens are kept, so a lookup never compares secrets byte by byte, and a memory dump
holds nothing that could be replayed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

CODE_TTL_S = 60.0
SESSION_TTL_S = 12 * 3600.0
MAX_CODES = 16  # outstanding codes; the oldest is forgotten first
MAX_SESSIONS = 32


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class LoginStore:
    """Codes → sessions. Every call first forgets what has expired."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._codes: dict[bytes, float] = {}  # digest → expiry
        self._sessions: dict[bytes, float] = {}

    def _purge(self) -> float:
        now = self.clock()
        for table in (self._codes, self._sessions):
            for digest in [d for d, expiry in table.items() if expiry <= now]:
                del table[digest]
        return now

    @staticmethod
    def _bounded(table: dict[bytes, float], limit: int) -> None:
        while len(table) >= limit:
            del table[next(iter(table))]  # insertion order: the oldest

    def new_code(self) -> str:
        now = self._purge()
        self._bounded(self._codes, MAX_CODES)
        code = secrets.token_urlsafe(32)
        self._codes[_digest(code)] = now + CODE_TTL_S
        return code

    def redeem(self, code: str) -> str | None:
        """A new session token for a valid code (which is used up), else None."""
        now = self._purge()
        if not code or self._codes.pop(_digest(code), None) is None:
            return None
        self._bounded(self._sessions, MAX_SESSIONS)
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = now + SESSION_TTL_S
        return token

    def session_valid(self, token: str | None) -> bool:
        self._purge()
        return bool(token) and _digest(token or "") in self._sessions

    def end_session(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)
