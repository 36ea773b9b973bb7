"""/v1/suppressions over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.suppression.schemas import MAX_EMAILS_PER_REQUEST
from tests.support.rows import suppressions

PATH = "/v1/suppressions"


async def add(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post(PATH, json=body)


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(PATH, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["suppressions"]
    return entries


async def test_added_addresses_are_listed_with_their_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await add(
        client,
        {"emails": ["b@example.com", "Ann <A@Example.COM>"], "reason": "manual", "detail": "CRM"},
    )

    assert response.status_code == 200
    assert response.json() == {"added": 2, "existing": 0}
    assert await listed(client) == [
        {"email": "A@example.com", "reason": "manual", "detail": "CRM", "createdAt": _now(runtime)},
        {"email": "b@example.com", "reason": "manual", "detail": "CRM", "createdAt": _now(runtime)},
    ]


def _now(runtime: Runtime) -> str:
    return runtime.clock.now().isoformat().replace("+00:00", "Z")


async def test_adding_is_idempotent_and_keeps_the_first_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await add(client, {"emails": ["a@example.com"], "reason": "complaint"})

    again = await add(client, {"emails": ["a@example.com", "a@EXAMPLE.com", "c@example.com"]})

    assert again.json() == {"added": 1, "existing": 1}  # the same address twice counts once
    assert await suppressions(runtime) == {
        "a@example.com": ("complaint", None),
        "c@example.com": ("manual", None),
    }


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"emails": ["a@example.com", "bob@"]}, 400, "emails[1]: invalid email address: bob@"),
        ({"emails": ["a<"]}, 400, "emails[0]: invalid email address: a<"),
        ({"emails": ["x:y <"]}, 400, "emails[0]: invalid email address: x:y <"),
        (
            {"emails": ["a@example.com"], "detail": "a\x00b"},
            400,
            "detail: must not contain the NUL character",
        ),
        ({"emails": []}, 400, "emails: must not be empty"),
        ({}, 400, "emails: Field required"),
        ({"emails": "a@example.com"}, 400, "emails: Input should be a valid array"),
        ({"emails": [7]}, 400, "emails[0]: Input should be a valid string"),
        (
            {"emails": ["a@example.com"], "reason": "spam"},
            400,
            "reason: Input should be 'bounce', 'complaint', 'unsubscribe' or 'manual'",
        ),
        (
            {"emails": ["a@example.com"], "detail": "x" * 1001},
            400,
            "detail: String should have at most 1000 characters",
        ),
        (
            {"emails": ["a@example.com"] * (MAX_EMAILS_PER_REQUEST + 1)},
            413,
            f"emails: at most {MAX_EMAILS_PER_REQUEST} addresses per request",
        ),
        (["a@example.com"], 400, "invalid request body: expected a JSON object"),
    ],
)
async def test_invalid_requests_name_the_field_and_store_nothing(
    client: httpx.AsyncClient, runtime: Runtime, body: Any, status: int, error: str
) -> None:
    response = await add(client, body)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert await suppressions(runtime) == {}


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, content=b"emails=a@example.com")

    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid request body: ")


async def test_filter_by_address_and_by_reason(client: httpx.AsyncClient) -> None:
    await add(client, {"emails": ["a@example.com", "b@example.com"], "reason": "bounce"})
    await add(client, {"emails": ["c@example.com"], "reason": "unsubscribe"})

    by_address = await listed(client, email="b@EXAMPLE.COM")  # normalised like the list
    by_reason = await listed(client, reason="unsubscribe")
    both = await listed(client, email="a@example.com", reason="unsubscribe")

    assert [entry["email"] for entry in by_address] == ["b@example.com"]
    assert [entry["email"] for entry in by_reason] == ["c@example.com"]
    assert both == []


async def test_pages_follow_the_cursor_to_the_end(client: httpx.AsyncClient) -> None:
    emails = [f"user{i}@example.com" for i in range(5)]
    await add(client, {"emails": emails, "reason": "bounce"})

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        page = (await client.get(PATH, params=params)).json()
        pages += 1
        seen += [entry["email"] for entry in page["suppressions"]]
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]

    assert (seen, pages) == (emails, 3)


async def test_a_full_last_page_says_it_is_the_last(client: httpx.AsyncClient) -> None:
    await add(client, {"emails": ["a@example.com", "b@example.com"]})

    page = (await client.get(PATH, params={"limit": 2})).json()

    assert (len(page["suppressions"]), page["nextCursor"]) == (2, None)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"limit": "0"}, "limit: Input should be greater than or equal to 1"),
        ({"limit": "1001"}, "limit: Input should be less than or equal to 1000"),
        ({"limit": "ten"}, "limit: Input should be a valid integer, unable to parse string"),
        ({"reason": "spam"}, "reason: Input should be 'bounce', 'complaint', 'unsubscribe' or"),
        ({"email": "not-an-address"}, "email: invalid email address: not-an-address"),
        ({"cursor": "%%%"}, "cursor: not a cursor from a previous page"),
        # Base64 of NUL bytes: past the edge's NUL check, and PostgreSQL cannot compare them.
        ({"cursor": "AAAA"}, "cursor: not a cursor from a previous page"),
        ({"cursor": "A" * 32}, "cursor: not a cursor from a previous page"),
        ({"email": "a<"}, "email: invalid email address: a<"),
        ({"email": "x:y <"}, "email: invalid email address: x:y <"),
        ({"email": "a\x00@example.com"}, "path and query: must not contain the NUL character"),
    ],
)
async def test_bad_query_parameters_name_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    response = await client.get(PATH, params=params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


async def test_delete_lifts_a_suppression_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await add(client, {"emails": ["a@example.com", "b@example.com"]})

    deleted = await client.delete(f"{PATH}/a@Example.COM")
    again = await client.delete(f"{PATH}/a@example.com")

    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404
    assert again.json()["error"] == "email: a@example.com is not suppressed"
    assert await suppressions(runtime) == {"b@example.com": ("manual", None)}


@pytest.mark.parametrize("address", ["a<", "x:y <"])
async def test_delete_of_an_address_the_header_parser_fails_on_names_it(
    client: httpx.AsyncClient, address: str
) -> None:
    response = await client.delete(f"{PATH}/{address}")

    assert response.status_code == 400
    assert response.json()["error"] == f"email: invalid email address: {address}"


async def test_delete_of_an_invalid_address_names_it(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{PATH}/bob@")

    assert response.status_code == 400
    assert response.json()["error"] == "email: invalid email address: bob@"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", PATH), ("POST", PATH), ("DELETE", f"{PATH}/a@example.com")],
)
async def test_every_route_needs_the_api_key(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, method: str, path: str
) -> None:
    response = await anonymous_client.request(method, path, json={"emails": ["a@example.com"]})

    assert response.status_code == 401
    assert await suppressions(runtime) == {}
