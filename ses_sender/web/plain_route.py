"""A route served without FastAPI's request handling, for the busiest public routes."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class PlainRoute(APIRoute):
    """Documented as any route (its parameters read from the endpoint's signature), but served
    by calling the endpoint with the request and the path's parameters: no dependency solver,
    no validation, no response model; the endpoint returns its `Response` itself. At 1,000
    clicks/s FastAPI's handling of the redirect cost more CPU than the redirect itself
    (docs/benchmarks.md "Click redirect")."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handle
