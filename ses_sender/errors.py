"""Domain errors carry their HTTP status; one handler renders them in the seed's error envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def error_response(
    request: Request, status_code: int, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {
            **(details or {}),
            "error": message,
            "path": request.url.path,
            "method": request.method,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        status_code=status_code,
    )


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


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(request, exc.status_code, exc.message, exc.details)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        return error_response(request, 400, describe_validation_error(errors[0]))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(request, exc.status_code, str(exc.detail))

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
