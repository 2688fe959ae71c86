"""The one place that builds OpenAI-shaped error bodies and the exceptions that carry them."""

from __future__ import annotations

import json
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "upstream_error",
    504: "upstream_error",
}


def error_body(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return `{"error": {message, type, param, code}}` plus any extra error fields."""
    error: dict[str, Any] = {
        "message": message,
        "type": ERROR_TYPES.get(
            status, "invalid_request_error" if status < 500 else "server_error"
        ),
        "param": param,
        "code": code,
    }
    if extra:
        error.update(extra)
    return {"error": error}


class SparksError(Exception):
    """An error with an HTTP status and an OpenAI error code; the middleware shapes it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra
        self.route_trace: list[dict[str, Any]] | None = None

    def body(self, include_trace: bool = False) -> dict[str, Any]:
        extra = dict(self.extra or {})
        if include_trace and self.route_trace is not None:
            extra["route_trace"] = self.route_trace
        return error_body(self.status, self.code, self.message, self.param, extra)

    def body_bytes(self, include_trace: bool = False) -> bytes:
        return json.dumps(self.body(include_trace)).encode()


def invalid_value(param: str, message: str) -> SparksError:
    return SparksError(400, "invalid_value", message, param=param)


def missing_field(param: str) -> SparksError:
    return SparksError(400, "missing_field", f"'{param}' is required", param=param)


def model_not_found(model: str, why: str = "") -> SparksError:
    suffix = f": {why}" if why else ""
    return SparksError(
        404, "model_not_found", f"The model '{model}' does not exist{suffix}", param="model"
    )


class ConfigError(Exception):
    """Invalid configuration; the message names the file and the dotted key path."""


class StartupError(Exception):
    """`sparks serve` cannot start; `exit_code` is 2 for bad usage or config, else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
