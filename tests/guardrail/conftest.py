from __future__ import annotations

from datetime import datetime

from ses_sender.composition import Runtime
from ses_sender.models import Content, Request, RequestStatus


async def add_sends(
    runtime: Runtime,
    count: int,
    *,
    sent_at: datetime,
    bounce_type: str | None = None,
    complained: bool = False,
) -> list[int]:
    """`count` sent emails, each with the same fate, as the worker and SNS would leave them."""
    async with runtime.sessionmaker() as session, session.begin():
        content = Content(topic_id="t1", subject="Hi", content="<p>Hi</p>", created_at=sent_at)
        session.add(content)
        await session.flush()
        rows = [
            Request(
                topic_id="t1",
                to=f"r{index}@example.net",
                recipient_key=f"r{index}@example.net",
                content_id=content.id,
                scheduled_at=sent_at,
                due_at=sent_at,
                status=RequestStatus.SENT,
                attempts=1,
                message_id=None,
                sent_at=sent_at,
                bounced_at=sent_at if bounce_type else None,
                bounce_type=bounce_type,
                complained_at=sent_at if complained else None,
                open_count=0,
                click_count=0,
                created_at=sent_at,
                updated_at=sent_at,
            )
            for index in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]
