"""One rendering of every error, in the seed's envelope:
`{"error": "<what is wrong, naming the field>", "path", "method", "timestamp"}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ses_sender.errors import ServiceError, describe_validation_error


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
