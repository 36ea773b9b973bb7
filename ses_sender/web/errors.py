"""One rendering of every error, in the seed's envelope:
`{"error": "<what is wrong, naming the field>", "path", "method", "timestamp"}`.

A database that is away (down, unreachable, locked, full, read-only) answers 503 with
`Retry-After`, and is logged in one line that names the route and the driver's reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ses_sender import instruments
from ses_sender.db import errors as database
from ses_sender.errors import ServiceError, describe_validation_error

log = logging.getLogger(__name__)

# Seconds a client is asked to wait after a database error: a restart or a failover takes
# about that long, and clients that all come back at once would not help it.
DATABASE_RETRY_AFTER_S = 5
DATABASE_UNAVAILABLE = "the database is unavailable: try again later"
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def error_document(message: str, *, path: str, method: str) -> dict[str, Any]:
    return {
        "error": message,
        "path": path,
        "method": method,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def error_response(
    request: Request,
    status_code: int,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            **(details or {}),
            **error_document(message, path=request.url.path, method=request.method),
        },
        status_code=status_code,
        headers=headers,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the routes at the request's path take, for a 405's `Allow` (RFC 9110).
    Starlette names only the first route's, and a path is often served by a route a method
    (`GET` and `HEAD` of a click link, `GET`, `PUT` and `DELETE` of a template). Each method is
    tried on the routes as the router would: included routers keep their routes to
    themselves."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    outage_log = database.OutageLog(log)  # a line a minute for each route, not per request

    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(request, exc.status_code, exc.message, exc.details)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        return error_response(request, 400, describe_validation_error(errors[0]))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(request, exc.status_code, str(exc.detail), headers=headers)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database.is_outage(exc):
            raise exc  # a wrong statement is a bug: a 500, with its traceback
        # The route's template, not the path: a path can hold a token.
        route = getattr(request.scope.get("route"), "path", request.url.path)
        outage_log.log(
            logging.WARNING,
            f"{request.method} {route}",
            "%s %s: database unavailable: %s",
            request.method,
            route,
            database.describe(exc),
        )
        instruments.DATABASE_UNAVAILABLE.labels("request").inc()
        return error_response(
            request,
            503,
            DATABASE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    app.add_exception_handler(ServiceError, on_service_error)
    for error in database.DATABASE_ERRORS:
        app.add_exception_handler(error, on_database_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
