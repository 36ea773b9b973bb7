"""A route served without FastAPI's request handling: documented as any other, its endpoint
given the path's parameters and the request, its errors answered in the app's envelope."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI, Request, Response

from ses_sender.errors import NotFound
from ses_sender.web.errors import install_error_handlers
from ses_sender.web.plain_route import PlainRoute

router = APIRouter(prefix="/things", route_class=PlainRoute)


@router.get("/{name}", response_class=Response, status_code=302)
async def thing(name: str, request: Request) -> Response:
    """Where a thing lives."""
    if name == "missing":
        raise NotFound("no such thing")
    return Response(status_code=302, headers={"Location": f"{request.method} {name}"})


def plain_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return app


async def test_the_endpoint_gets_the_path_parameters_and_the_request() -> None:
    transport = httpx.ASGITransport(app=plain_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        found = await client.get("/things/lamp")
        missing = await client.get("/things/missing")

    assert (found.status_code, found.headers["location"]) == (302, "GET lamp")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no such thing"


def test_it_is_documented_with_its_parameters() -> None:
    operation = plain_app().openapi()["paths"]["/things/{name}"]["get"]

    assert operation["description"] == "Where a thing lives."
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("name", "path")]
