from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.models import Content, Request, RequestStatus, StopReason


async def add_requests(
    runtime: Runtime,
    statuses: Sequence[RequestStatus],
    *,
    topic: str = "t1",
    scheduled_in_s: float = 0.0,
) -> list[int]:
    """One request per status, as the API and the worker leave them, on the runtime's clock."""
    now = runtime.clock.now()
    scheduled = now + timedelta(seconds=scheduled_in_s)
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id=topic, subject="Hello", content="<p>Hi</p>", created_at=now)
        session.add(content)
        await session.flush()
        rows = [
            _row(topic, index, content.id, status, scheduled, now)
            for index, status in enumerate(statuses)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


def _row(
    topic: str,
    index: int,
    content_id: int,
    status: RequestStatus,
    scheduled: datetime,
    now: datetime,
) -> Request:
    address = f"{topic.replace('/', '.')}-{index}@example.com"
    return Request(
        topic_id=topic,
        to=address,
        recipient_key=address,
        content_id=content_id,
        scheduled_at=scheduled,
        due_at=scheduled,
        lease_expires_at=scheduled + timedelta(minutes=2)
        if status == RequestStatus.PROCESSING
        else None,
        stop_reason=StopReason.CANCELLED if status == RequestStatus.STOPPED else None,
        status=status,
        attempts=0 if status == RequestStatus.CREATED else 1,
        message_id=f"ses-{topic}-{index}" if status == RequestStatus.SENT else None,
        sent_at=now if status == RequestStatus.SENT else None,
        error="MessageRejected" if status == RequestStatus.FAILED else None,
        open_count=0,
        click_count=0,
        created_at=now,
        updated_at=now,
    )


async def rows_by_id(runtime: Runtime) -> dict[int, Request]:
    async with runtime.sessionmaker() as session:
        return {row.id: row for row in (await session.scalars(select(Request))).all()}


async def post_topic(
    api: httpx.AsyncClient, topic: str, count: int, *, scheduled_at: str | None = None
) -> list[int]:
    message: dict[str, object] = {
        "topicId": topic,
        "emails": [f"{topic}{i}@example.com" for i in range(count)],
        "subject": "Hello",
        "content": "<p>Hi</p>",
    }
    if scheduled_at is not None:
        message["scheduledAt"] = scheduled_at
    response = await api.post("/v1/messages", json={"messages": [message]})
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["messages"][0]["requestIds"]
    return ids
