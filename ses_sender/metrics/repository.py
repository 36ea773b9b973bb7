from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import DeliveryStatus, Request, RequestStatus, WebhookDelivery


async def unsent_counts(session: AsyncSession) -> dict[tuple[int, bool], int]:
    """Requests not sent yet, by (status, held): two ranges of the claim index
    (status, held, due_at, id), counted from the index alone on PostgreSQL."""
    rows = await session.execute(
        select(Request.status, Request.held, func.count())
        .where(Request.status.in_((RequestStatus.CREATED, RequestStatus.PROCESSING)))
        .group_by(Request.status, Request.held)
    )
    return {(status, held): count for status, held, count in rows}


async def pending_webhook_deliveries(session: AsyncSession) -> int:
    """One range of the claim index (status, due_at, id)."""
    count = await session.scalar(
        select(func.count()).where(WebhookDelivery.status == DeliveryStatus.PENDING)
    )
    return count or 0
