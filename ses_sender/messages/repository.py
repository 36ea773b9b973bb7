"""SQL for accepting messages: contents, one request row per recipient, idempotency keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.statements import insert_for
from ses_sender.models import Content, IdempotencyKey, Request, RequestStatus

if TYPE_CHECKING:
    from ses_sender.messages.service import ValidMessage


@dataclass(frozen=True, slots=True)
class StoredReply:
    request_hash: str
    status_code: int
    response: str


async def insert_content(session: AsyncSession, message: ValidMessage, *, now: datetime) -> int:
    content_id = await session.scalar(
        insert(Content)
        .values(
            topic_id=message.topic_id,
            subject=message.subject,
            content=message.content,
            created_at=now,
        )
        .returning(Content.id)
    )
    assert isinstance(content_id, int)
    return content_id


async def insert_requests(
    session: AsyncSession, message: ValidMessage, content_id: int, *, now: datetime
) -> list[int]:
    """Insert one row per recipient; the ids come back in the recipients' order."""
    rows: list[dict[str, Any]] = [
        {
            "topic_id": message.topic_id,
            "to": recipient.address,
            "content_id": content_id,
            "scheduled_at": message.scheduled_at,
            "due_at": message.scheduled_at,
            "status": RequestStatus.CREATED,
            "attempts": 0,
            "open_count": 0,
            "click_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        for recipient in message.recipients
    ]
    result = await session.execute(
        insert(Request).returning(Request.id, sort_by_parameter_order=True), rows
    )
    return list(result.scalars())


async def claim_idempotency_key(
    session: AsyncSession, key: str, request_hash: str, *, now: datetime
) -> bool:
    """Insert the key as "in progress"; False when it already exists."""
    statement = insert_for(session, IdempotencyKey)
    result = await session.execute(
        statement.values(
            key=key, request_hash=request_hash, status_code=0, response="", created_at=now
        )
        .on_conflict_do_nothing(index_elements=[IdempotencyKey.key])
        .returning(IdempotencyKey.key)
    )
    return result.scalar_one_or_none() is not None


async def record_idempotent_reply(
    session: AsyncSession, key: str, status_code: int, response: str
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .values(status_code=status_code, response=response)
    )


async def find_idempotent_reply(session: AsyncSession, key: str) -> StoredReply | None:
    row = (
        await session.execute(
            select(
                IdempotencyKey.request_hash, IdempotencyKey.status_code, IdempotencyKey.response
            ).where(IdempotencyKey.key == key)
        )
    ).one_or_none()
    return None if row is None else StoredReply(*row)
