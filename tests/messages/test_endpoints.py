from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ses_sender.composition import Runtime, create_app
from ses_sender.messages.dependencies import RECIPIENT_LIMIT
from ses_sender.messages.schemas import MAX_MESSAGES_PER_REQUEST
from ses_sender.models import Content, IdempotencyKey, Request, RequestStatus
from tests.support.api import SEED_EXAMPLE
from tests.support.clock import FakeClock
from tests.support.settings import API_KEY


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topicId": "t1",
        "emails": ["a@example.com"],
        "subject": "Hello",
        "content": "<p>Hi</p>",
    }
    body.update(overrides)
    return body


async def stored_counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessionmaker() as session:
        contents = await session.scalar(select(func.count()).select_from(Content))
        requests = await session.scalar(select(func.count()).select_from(Request))
    return contents or 0, requests or 0


async def test_seed_example_is_accepted_with_ids(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    response = await client.post("/v1/messages", json=SEED_EXAMPLE)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["elapsed"].endswith(("ns", "µs", "ms", "s"))
    [accepted] = body["messages"]
    assert accepted["topicId"] == "promotion-event-2024"
    assert accepted["duplicates"] == 0
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(Request).order_by(Request.id))).all()
    assert [row.id for row in rows] == accepted["requestIds"]
    assert [row.to for row in rows] == ["recipient1@example.com", "recipient2@example.com"]
    assert {row.status for row in rows} == {RequestStatus.CREATED}
    # A past scheduledAt means "now" (the seed silently dropped such messages).
    assert {row.due_at for row in rows} == {clock.now()}


async def test_future_schedule_is_kept_in_utc(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    later = clock.now() + timedelta(days=2)
    response = await client.post(
        "/v1/messages",
        json={"messages": [message(scheduledAt=later.astimezone().isoformat())]},
    )

    assert response.status_code == 200
    async with runtime.sessionmaker() as session:
        row = (await session.scalars(select(Request))).one()
    assert row.scheduled_at == later
    assert row.due_at == later


async def test_repeated_addresses_are_taken_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    emails = ["a@Example.COM", " a@example.com ", "b@example.com", "A@example.com"]
    response = await client.post("/v1/messages", json={"messages": [message(emails=emails)]})

    assert response.status_code == 200
    accepted = response.json()["messages"][0]
    first, second, third, fourth = accepted["requestIds"]
    # The domain is case-insensitive, the local part is not.
    assert first == second
    assert len({first, third, fourth}) == 3
    assert accepted["duplicates"] == 1
    assert response.json()["count"] == 3
    assert await stored_counts(runtime) == (1, 3)


@pytest.mark.parametrize(
    ("bad_message", "expected_error"),
    [
        ({"subject": "  "}, "messages[1].subject: subject cannot be empty"),
        ({"subject": "Hi\r\nBcc: x@example.com"}, "messages[1].subject: must not contain"),
        ({"content": ""}, "messages[1].content: content cannot be empty"),
        ({"emails": []}, "messages[1].emails: emails array cannot be empty"),
        ({"emails": ["ok@example.com", "nope"]}, "messages[1].emails[1]: invalid email address"),
        ({"emails": ["a@example.com\r\nBcc: b@example.com"]}, "messages[1].emails[0]"),
        ({"emails": ["用户@example.com"]}, "messages[1].emails[0]: invalid email address"),
        ({"emails": ["a@example.com, b@example.com"]}, "messages[1].emails[0]"),
        ({"scheduledAt": "2030-12-25T10:00:00"}, "messages[1].scheduledAt: invalid scheduledAt"),
        ({"scheduledAt": "tomorrow"}, "messages[1].scheduledAt: invalid scheduledAt"),
        ({"scheduledAt": "2030-02-30T10:00:00Z"}, "messages[1].scheduledAt: invalid scheduledAt"),
        ({"topicId": "x" * 256}, "messages[1].topicId"),
        ({"emails": "a@example.com"}, "messages[1].emails"),
        ({"subject": 5}, "messages[1].subject"),
        ({"emails": ["a<"]}, "messages[1].emails[0]: invalid email address"),
        ({"emails": ["x:y <"]}, "messages[1].emails[0]: invalid email address"),
        ({"scheduledAt": "0001-01-01T00:00:00+14:00"}, "messages[1].scheduledAt: out of range"),
        ({"scheduledAt": "9999-12-31T23:59:59-14:00"}, "messages[1].scheduledAt: out of range"),
        ({"subject": "Hi\u2028there"}, "messages[1].subject: must not contain line breaks"),
        ({"subject": "Hi\x0bthere"}, "messages[1].subject: must not contain line breaks"),
        ({"subject": "Hi\x0cthere"}, "messages[1].subject: must not contain line breaks"),
        ({"subject": "Hi\x85there"}, "messages[1].subject: must not contain line breaks"),
        ({"subject": "Hi\x00there"}, "messages[1].subject: must not contain the NUL"),
        ({"content": "<p>\x00</p>"}, "messages[1].content: must not contain the NUL"),
        ({"topicId": ""}, "messages[1].topicId"),
        ({"topicId": "   "}, "messages[1].topicId"),
        ({"from": "N" * 980 + " <sender@example.com>"}, "messages[1].from: at most 998"),
        ({"from": "é" * 400 + " <sender@example.com>"}, "messages[1].from: at most 998"),
        ({"emails": ["é" * 400 + " <a@example.com>"]}, "messages[1].emails[0]: invalid"),
    ],
)
async def test_one_bad_message_stores_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    bad_message: dict[str, Any],
    expected_error: str,
) -> None:
    body = {"messages": [message(), message(**bad_message)]}

    response = await client.post("/v1/messages", json=body)

    assert response.status_code == 400
    error = response.json()
    assert error["error"].startswith(expected_error)
    assert error["path"] == "/v1/messages"
    assert error["method"] == "POST"
    assert error["timestamp"].endswith("Z")
    assert await stored_counts(runtime) == (0, 0)


@pytest.mark.parametrize(
    ("raw", "expected_error"),
    [
        (b"", "invalid request body"),
        (b"{not json", "invalid request body"),
        (b"[1, 2]", "invalid request body: expected a JSON object"),
        (b"{}", "messages array cannot be empty"),
        (b'{"messages": []}', "messages array cannot be empty"),
        (b'{"messages": null}', "messages array cannot be empty"),
        (b'{"messages": [1]}', "messages[0]"),
        (b"\xff\xfe", "invalid request body"),
    ],
)
async def test_unreadable_bodies_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, raw: bytes, expected_error: str
) -> None:
    response = await client.post(
        "/v1/messages", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(expected_error)
    assert await stored_counts(runtime) == (0, 0)


async def test_display_names_and_international_addresses(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    emails = ["Jane Doe <jane@Example.com>", "jane@example.com", "user@例子.广告"]
    response = await client.post("/v1/messages", json={"messages": [message(emails=emails)]})

    assert response.status_code == 200
    ids = response.json()["messages"][0]["requestIds"]
    assert ids[0] == ids[1]
    async with runtime.sessionmaker() as session:
        recipients = (await session.scalars(select(Request.to).order_by(Request.id))).all()
    assert recipients == ["Jane Doe <jane@example.com>", "user@xn--fsqu00a.xn--4rr70v"]


async def test_recipient_limit_per_request(runtime: Runtime) -> None:
    app = create_app(runtime)
    RECIPIENT_LIMIT.provide(app, 3)  # MAX_RECIPIENTS_PER_REQUEST=3
    body = {
        "messages": [message(emails=["a@x.io", "b@x.io"]), message(emails=["c@x.io", "d@x.io"])]
    }

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"x-api-key": API_KEY},
    ) as client:
        response = await client.post("/v1/messages", json=body)

    assert response.status_code == 413
    assert response.json()["error"] == "messages: 4 recipients in one request, at most 3"
    assert await stored_counts(runtime) == (0, 0)


async def test_message_count_limit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = {"messages": [message()] * (MAX_MESSAGES_PER_REQUEST + 1)}

    response = await client.post("/v1/messages", json=body)

    assert response.status_code == 413
    assert response.json()["error"].startswith("messages: at most")


async def test_hundred_thousand_recipients_in_one_request(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    emails = [f"user{i}@example.com" for i in range(100_000)]

    response = await client.post("/v1/messages", json={"messages": [message(emails=emails)]})

    assert response.status_code == 200
    ids = response.json()["messages"][0]["requestIds"]
    assert len(set(ids)) == 100_000
    assert await stored_counts(runtime) == (1, 100_000)
    async with runtime.sessionmaker() as session:
        last = await session.scalar(select(Request.to).where(Request.id == ids[-1]))
    assert last == "user99999@example.com"


class TestIdempotencyKey:
    async def test_a_retry_replays_the_first_answer(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        headers = {"Idempotency-Key": "campaign-42"}
        first = await client.post("/v1/messages", json=SEED_EXAMPLE, headers=headers)
        again = await client.post("/v1/messages", json=SEED_EXAMPLE, headers=headers)

        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert await stored_counts(runtime) == (1, 2)

    async def test_the_same_key_with_another_body_is_refused(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        headers = {"Idempotency-Key": "campaign-42"}
        await client.post("/v1/messages", json=SEED_EXAMPLE, headers=headers)
        other = await client.post("/v1/messages", json={"messages": [message()]}, headers=headers)

        assert other.status_code == 409
        assert "different request body" in other.json()["error"]
        assert await stored_counts(runtime) == (1, 2)

    async def test_a_refused_request_does_not_use_up_the_key(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        headers = {"Idempotency-Key": "k1"}
        bad = await client.post(
            "/v1/messages", json={"messages": [message(subject="")]}, headers=headers
        )
        good = await client.post("/v1/messages", json=SEED_EXAMPLE, headers=headers)

        assert bad.status_code == 400
        assert good.status_code == 200
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1

    async def test_concurrent_retries_store_once(
        self, client: httpx.AsyncClient, runtime: Runtime
    ) -> None:
        import asyncio

        headers = {"Idempotency-Key": "race"}
        answers = await asyncio.gather(
            *(client.post("/v1/messages", json=SEED_EXAMPLE, headers=headers) for _ in range(5))
        )

        assert {answer.status_code for answer in answers} <= {200, 409}
        ok = [answer.json() for answer in answers if answer.status_code == 200]
        assert ok
        assert all(body == ok[0] for body in ok)
        assert await stored_counts(runtime) == (1, 2)

    async def test_an_unusable_key_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/messages", json=SEED_EXAMPLE, headers={"Idempotency-Key": "x" * 300}
        )

        assert response.status_code == 400
        assert response.json()["error"].startswith("Idempotency-Key:")
