"""POST, GET and DELETE /v1/webhooks, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime
from ses_sender.models import Webhook, WebhookDelivery
from ses_sender.webhooks.schemas import MAX_WEBHOOKS
from ses_sender.webhooks.service import enqueue_event
from tests.support.rows import add_request
from tests.support.webhooks import create_webhook

URL = "https://hooks.example.com/ses"


async def webhook_count(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Webhook)) or 0


class TestCreate:
    async def test_answers_201_with_id_and_secret(self, client: httpx.AsyncClient) -> None:
        created = await create_webhook(client, URL, events=["Bounce", "Complaint"])

        assert created["url"] == URL
        assert created["events"] == ["Bounce", "Complaint"]
        assert created["enabled"] is True
        assert created["disabledReason"] is None
        assert isinstance(created["id"], int)
        assert created["secret"].startswith("whsec_")
        assert len(created["secret"]) == len("whsec_") + 64

    async def test_events_left_out_means_every_type(self, client: httpx.AsyncClient) -> None:
        assert (await create_webhook(client, URL))["events"] is None

    async def test_each_webhook_gets_its_own_secret(self, client: httpx.AsyncClient) -> None:
        first = await create_webhook(client, URL)
        second = await create_webhook(client, URL)
        assert first["secret"] != second["secret"]
        assert first["id"] != second["id"]

    async def test_repeated_event_types_are_kept_once(self, client: httpx.AsyncClient) -> None:
        created = await create_webhook(client, URL, events=["Open", "Bounce", "Open"])
        assert created["events"] == ["Open", "Bounce"]

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/hooks",
            "http://localhost/hooks",
            "http://[::1]:9000/",
            "https://10.0.0.5/internal",
            "  https://hooks.example.com/padded  ",
        ],
    )
    async def test_accepted_urls(self, client: httpx.AsyncClient, url: str) -> None:
        assert (await create_webhook(client, url))["url"] == url.strip()

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ({"url": "http://hooks.example.com/ses"}, "url: must be an absolute https:// URL"),
            ({"url": "http://192.168.1.10/ses"}, "url: must be an absolute https:// URL"),
            ({"url": "ftp://hooks.example.com/"}, "url: must be an absolute https:// URL"),
            ({"url": "hooks.example.com/ses"}, "url: must be an absolute https:// URL"),
            ({"url": "https:///no-host"}, "url: must be an absolute https:// URL"),
            ({"url": "https://hooks.example.com:99999/"}, "url: must be an absolute https://"),
            ({"url": "https://hooks.example.com:port/"}, "url: must be an absolute https://"),
            ({"url": "https://hooks.example.com/a b"}, "url: 1 to 2048 printable characters"),
            ({"url": ""}, "url: 1 to 2048 printable characters"),
            ({"url": "https://h.example.com/" + "a" * 2048}, "url: 1 to 2048 printable"),
            ({"url": 42}, "url: Input should be a valid string"),
            ({}, "url: Field required"),
            ({"url": URL, "events": []}, "events: name at least one event type"),
            ({"url": URL, "events": ["Bounce", "Bounced"]}, "events[1]: unknown event type"),
            ({"url": URL, "events": "Bounce"}, "events: Input should be a valid array"),
            ({"url": URL, "events": [1]}, "events[0]: Input should be a valid string"),
        ],
    )
    async def test_bad_input_is_400_naming_the_field(
        self, client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], error: str
    ) -> None:
        response = await client.post("/v1/webhooks", json=body)

        assert response.status_code == 400
        assert response.json()["error"].startswith(error)
        assert await webhook_count(runtime) == 0

    @pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b"\xff\xfe"])
    async def test_a_body_that_is_not_a_json_object_is_400(
        self, client: httpx.AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            "/v1/webhooks", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"].startswith("invalid request body")

    async def test_at_most_the_limit(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        for _ in range(MAX_WEBHOOKS):
            await create_webhook(client, URL)

        response = await client.post("/v1/webhooks", json={"url": URL})

        assert response.status_code == 409
        assert response.json()["error"].startswith(f"url: at most {MAX_WEBHOOKS} webhooks")
        assert await webhook_count(runtime) == MAX_WEBHOOKS


class TestList:
    async def test_lists_every_webhook_without_secrets(self, client: httpx.AsyncClient) -> None:
        first = await create_webhook(client, URL, events=["Delivery"])
        second = await create_webhook(client, "https://other.example.com/hook")

        response = await client.get("/v1/webhooks")

        assert response.status_code == 200
        listed = response.json()["webhooks"]
        assert [hook["id"] for hook in listed] == [first["id"], second["id"]]
        assert all("secret" not in hook for hook in listed)
        assert first["secret"] not in response.text
        assert listed[0] == {key: value for key, value in first.items() if key != "secret"}

    async def test_empty(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/webhooks")
        assert response.json() == {"webhooks": []}


class TestDelete:
    async def test_removes_it_and_what_was_queued_for_it(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        kept = await create_webhook(client, "https://kept.example.com/")
        removed = await create_webhook(client, URL)
        request_id = await add_request(runtime)
        async with runtime.sessionmaker() as session, session.begin():
            now = runtime.clock.now()
            await enqueue_event(
                session,
                event_type="Open",
                request_id=request_id,
                occurred_at=now,
                details={},
                now=now,
            )

        response = await client.delete(f"/v1/webhooks/{removed['id']}")

        assert response.status_code == 204
        listed = (await client.get("/v1/webhooks")).json()["webhooks"]
        assert [hook["id"] for hook in listed] == [kept["id"]]
        async with runtime.sessionmaker() as session:
            owners = (await session.scalars(select(WebhookDelivery.webhook_id))).all()
        assert owners == [kept["id"]]

    @pytest.mark.parametrize("webhook_id", ["999", str(2**63 - 1)])
    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, webhook_id: str) -> None:
        response = await client.delete(f"/v1/webhooks/{webhook_id}")
        assert response.status_code == 404
        assert response.json()["error"] == f"webhook {webhook_id} not found"

    @pytest.mark.parametrize("webhook_id", ["abc", "0", str(2**63)])
    async def test_impossible_id_is_400(self, client: httpx.AsyncClient, webhook_id: str) -> None:
        response = await client.delete(f"/v1/webhooks/{webhook_id}")
        assert response.status_code == 400
        assert response.json()["error"].startswith("webhook_id:")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("DELETE", "/v1/webhooks/1")],
)
async def test_every_route_needs_the_api_key(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, method: str, path: str
) -> None:
    response = await anonymous_client.request(method, path, json={"url": URL})
    assert response.status_code == 401
    assert await webhook_count(runtime) == 0
