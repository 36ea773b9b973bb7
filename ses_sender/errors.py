"""Domain errors carry their HTTP status, so services raise them without knowing of HTTP; the
web layer renders them (`web/errors.py`)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        # Extra fields for the envelope, for a client to act on without parsing `error`.
        self.details = details or {}


class InvalidInput(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class PayloadTooLarge(ServiceError):
    status_code = 413


def describe_validation_error(error: Any) -> str:
    """One pydantic error as `messages[0].emails: <what is wrong>`."""
    location = ""
    parts = tuple(error.get("loc", ()))
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    for part in parts:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else part)
    message = str(error.get("msg", "invalid value"))
    return f"{location}: {message}" if location else message
