from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from ses_sender.composition import Runtime
from ses_sender.models import Request, RequestStatus, Result, ResultSource
from tests.support.rows import queue_emails

NO_OUTCOMES = {
    "complained": 0,
    "bounced": 0,
    "rejected": 0,
    "softBounced": 0,
    "delivered": 0,
    "delayed": 0,
    "sent": 0,
}
NO_ENGAGEMENT = {
    "total": 0,
    "human": 0,
    "machine": 0,
    "unique": 0,
    "uniqueHuman": 0,
    "uniqueMachine": 0,
    "rate": 0.0,
}
EMPTY = {
    "request": {
        "total": 0,
        "created": 0,
        "processing": 0,
        "sent": 0,
        "failed": 0,
        "stopped": 0,
        "suppressed": 0,
    },
    "result": {"total": 0, "statuses": {}, "outcomes": NO_OUTCOMES},
    "opens": NO_ENGAGEMENT,
    "clicks": NO_ENGAGEMENT,
}


async def set_status(runtime: Runtime, ids: list[int], status: RequestStatus) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        values: dict[str, object] = {"status": status}
        if status == RequestStatus.SENT:
            values["sent_at"] = runtime.clock.now()
        await session.execute(update(Request).where(Request.id.in_(ids)).values(**values))


async def log_event(runtime: Runtime, request_id: int, status: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            Result(
                request_id=request_id,
                status=status,
                source=ResultSource.SES,
                occurred_at=runtime.clock.now(),
                raw="{}",
                created_at=runtime.clock.now(),
            )
        )


async def test_an_unknown_topic_has_the_same_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/topics/nothing-here")

    assert response.status_code == 200
    assert response.json() == EMPTY


async def test_topic_counts_every_status_and_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ids = await queue_emails(runtime, [f"u{i}@example.com" for i in range(7)], topic="spring/sale")
    await queue_emails(runtime, ["other@example.com"], topic="other")
    await set_status(runtime, ids[:3], RequestStatus.SENT)
    await set_status(runtime, ids[3:4], RequestStatus.FAILED)
    await set_status(runtime, ids[4:5], RequestStatus.PROCESSING)
    await set_status(runtime, ids[5:6], RequestStatus.STOPPED)
    for request_id in ids[:3]:
        await log_event(runtime, request_id, "Delivery")
    await log_event(runtime, ids[0], "Open")
    await log_event(runtime, ids[0], "Open")  # opened twice: one request
    await log_event(runtime, ids[1], "Bounce")

    response = await client.get("/v1/topics/spring/sale")

    assert response.json() == {
        "request": {
            "total": 7,
            "created": 1,
            "processing": 1,
            "sent": 3,
            "failed": 1,
            "stopped": 1,
            "suppressed": 0,
        },
        "result": {
            "total": 3,
            "statuses": {"Delivery": 3, "Open": 1, "Bounce": 1},
            # No outcome was recorded on these rows: sent, nothing heard.
            "outcomes": {**NO_OUTCOMES, "sent": 3},
        },
        # Our own opens and clicks only: these came from SES.
        "opens": NO_ENGAGEMENT,
        "clicks": NO_ENGAGEMENT,
    }


async def test_sent_count_uses_the_sent_time(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ids = await queue_emails(runtime, ["a@example.com", "b@example.com", "c@example.com"])
    await set_status(runtime, ids, RequestStatus.SENT)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Request)
            .where(Request.id == ids[0])
            .values(sent_at=runtime.clock.now() - timedelta(hours=30))
        )

    day = await client.get("/v1/events/counts/sent")
    week = await client.get("/v1/events/counts/sent", params={"hours": "168"})

    assert day.json() == {"count": 2, "hours": 24, "since": "2026-01-04T10:00:00Z"}
    assert week.json()["count"] == 3


@pytest.mark.parametrize("hours", ["0", "-5", "169", "200", "invalid", "1.5", ""])
async def test_sent_count_hours_must_be_1_to_168(client: httpx.AsyncClient, hours: str) -> None:
    response = await client.get("/v1/events/counts/sent", params={"hours": hours})

    assert response.status_code == 400
    assert response.json()["error"] == "hours must be between 1 and 168"
