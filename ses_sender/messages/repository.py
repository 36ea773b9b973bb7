"""SQL for accepting messages: contents, one request row per recipient, idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import allocate_ids, bound, bulk_insert, insert_for
from ses_sender.db.pruning import delete_some
from ses_sender.messages.addresses import Recipient
from ses_sender.models import Attachment as AttachmentRow
from ses_sender.models import Content, IdempotencyKey, Request, RequestStatus
from ses_sender.transports.base import Attachment

_requests = cast(Table, Request.__table__)


@dataclass(frozen=True, slots=True)
class StoredReply:
    request_hash: str
    status_code: int
    response: str


async def insert_content(
    session: AsyncSession,
    *,
    topic_id: str,
    subject: str,
    content: str,
    text: str | None,
    templated: bool,
    data: str | None,
    sender: str | None,
    reply_to: Sequence[str],
    headers: Sequence[tuple[str, str]],
    tags: Sequence[tuple[str, str]],
    template_id: int | None,
    template_version: int | None,
    track_clicks: bool | None,
    now: datetime,
) -> int:
    content_id = await session.scalar(
        insert(Content)
        .values(
            topic_id=topic_id,
            subject=subject,
            content=content,
            text=text,
            templated=templated,
            data=data,
            sender=sender,
            reply_to=_json_or_null(reply_to),
            headers=_json_or_null(headers),
            tags=_json_or_null(tags),
            template_id=template_id,
            template_version=template_version,
            track_clicks=track_clicks,
            created_at=now,
        )
        .returning(Content.id)
    )
    assert isinstance(content_id, int)
    return content_id


async def insert_attachments(
    session: AsyncSession, content_id: int, attachments: Sequence[Attachment]
) -> None:
    if attachments:
        await session.execute(
            insert(AttachmentRow),
            [
                {
                    "content_id": content_id,
                    "position": position,
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "inline_id": attachment.inline_id,
                    "data": attachment.data,
                }
                for position, attachment in enumerate(attachments)
            ],
        )


def _json_or_null(values: Sequence[Any]) -> str | None:
    return orjson.dumps(values).decode() if values else None


async def insert_requests(
    session: AsyncSession,
    *,
    topic_id: str,
    content_id: int,
    scheduled_at: datetime,
    recipients: Sequence[Recipient],
    data: Sequence[str | None] | None = None,
    now: datetime,
) -> list[int]:
    """Insert one row per recipient; the ids come back in the recipients' order.

    The ids are allocated first and the rows go in with one bulk statement: through the ORM,
    the per-row work was most of the request's time
    (docs/decisions/0014-intake-ids-then-bulk-insert.md).
    """
    if not recipients:
        return []
    connection = await session.connection()
    ids = await allocate_ids(connection, _requests, len(recipients))
    # Every value but the id, the address and the recipient's data is the same on each row:
    # bound once. The other
    # columns (message_id, sent_at, delivered_at, ...) stay NULL.
    shared = {
        "topic_id": topic_id,
        "content_id": content_id,
        "scheduled_at": scheduled_at,
        "due_at": scheduled_at,
        "status": int(RequestStatus.CREATED),
        "attempts": 0,
        "open_count": 0,
        "click_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    values = tuple(
        bound(connection.dialect, _requests.c[name], value) for name, value in shared.items()
    )
    own_data = data if data is not None else [None] * len(recipients)
    rows = [
        (request_id, recipient.address, recipient.key, own, *values)
        for request_id, recipient, own in zip(ids, recipients, own_data, strict=True)
    ]
    await bulk_insert(connection, _requests, ("id", "to", "recipient_key", "data", *shared), rows)
    return ids


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


async def delete_answered_idempotency_keys(
    session: AsyncSession, *, created_before: datetime, limit: int
) -> int:
    """Up to `limit` keys answered and created before `created_before`; how many went."""
    return await delete_some(
        session,
        IdempotencyKey.key,
        IdempotencyKey.created_at < created_before,
        IdempotencyKey.status_code != 0,
        limit=limit,
    )
