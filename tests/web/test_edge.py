"""What every exchange gets whatever the route: nosniff, and bounded, NUL-free input."""

from __future__ import annotations

import httpx
import pytest

from ses_sender.composition import Runtime
from tests.support.rows import requests_by_id


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/v1/events/open"),
        ("GET", "/no/such/route"),
        ("POST", "/v1/messages"),
        ("GET", "/openapi.json"),
    ],
)
async def test_every_answer_says_nosniff(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)

    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["/v1/topics/a%00b", "/v1/suppressions?email=a%00@example.com", "/v1/events/open?t=%00"],
)
async def test_nul_in_a_path_or_query_is_refused(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 400
    assert response.json()["error"] == "path and query: must not contain the NUL character"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"messages": ' + b"1" * 5_000 + b"}", "invalid request body: number out of range"),
        (
            b'{"messages": ' + b"[" * 1_500 + b"]" * 1_500 + b"}",
            "invalid request body: recursion limit exceeded",
        ),
        (b'{"messages": [{"topicId": "\\ud800"}]}', "invalid request body: "),
    ],
    ids=["5000-digit integer", "nested 1500 deep", "lone surrogate"],
)
async def test_json_no_parser_should_take_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, error: str
) -> None:
    response = await client.post(
        "/v1/messages", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert await requests_by_id(runtime) == {}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_no_page_loads_third_party_scripts(client: httpx.AsyncClient, path: str) -> None:
    """FastAPI's documentation pages load theirs from a CDN: they are not served."""
    assert (await client.get(path)).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 200
