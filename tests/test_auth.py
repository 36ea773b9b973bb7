from __future__ import annotations

import httpx
import pytest

from ses_sender.composition import Runtime
from ses_sender.web.auth import ApiKeys

PROTECTED = [
    ("POST", "/v1/messages"),
    ("GET", "/v1/topics/any"),
    ("GET", "/v1/events/counts/sent"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "presented",
    [None, "", "wrong", "TEST-KEY-0123456789", " test-key-0123456789", "test-key-012345678"],
)
async def test_protected_routes_refuse_a_missing_or_wrong_key(
    anonymous_client: httpx.AsyncClient, method: str, path: str, presented: str | None
) -> None:
    headers = {} if presented is None else {"x-api-key": presented}

    response = await anonymous_client.request(method, path, headers=headers, json={})

    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized: Invalid API key"
    assert response.json()["path"] == path


async def test_no_configured_key_fails_closed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.api_keys._digests = []  # as if API_KEY were unset

    response = await client.get("/v1/topics/any")

    assert response.status_code == 401


def test_several_keys_allow_rotation() -> None:
    keys = ApiKeys(["old-key", "new-key"])

    assert keys.accepts("old-key")
    assert keys.accepts("new-key")
    assert not keys.accepts("other")
    assert not keys.accepts(None)
    assert not ApiKeys([]).accepts("")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/v1/events/open"), ("GET", "/openapi.json")],
)
async def test_open_routes_need_no_key(
    anonymous_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous_client.request(method, path)

    assert response.status_code == 200


async def test_unknown_paths_and_methods_use_the_error_envelope(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/v1/nothing")
    wrong_method = await client.delete("/v1/messages")

    assert missing.status_code == 404
    assert missing.json()["path"] == "/v1/nothing"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["method"] == "DELETE"
