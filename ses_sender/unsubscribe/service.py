"""One-click unsubscribe (RFC 8058): the recipient of a request leaves every list of ours."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.models import EventType, SuppressionReason
from ses_sender.stats import service as stats
from ses_sender.suppression import service as suppression
from ses_sender.unsubscribe import repository
from ses_sender.webhooks.service import enqueue_event


async def recipient_of(session: AsyncSession, request_id: int) -> str | None:
    """The address the link acts on; None when the request does not exist."""
    return await repository.recipient_key(session, request_id)


async def unsubscribe(session: AsyncSession, request_id: int, *, now: datetime) -> str | None:
    """Mark the request and suppress its address, which it returns; None when the request
    does not exist.

    Safe to repeat (mailbox providers may POST twice): the event is logged once, and the
    address is suppressed again if it was taken off the list since.
    """
    async with stats.counting(session, [request_id]) as counted:
        unsubscribed = await repository.mark_unsubscribed(session, request_id, now=now)
        if unsubscribed is None:
            return None
        if unsubscribed.first_time:
            repository.log_unsubscribe(session, request_id, unsubscribed.recipient_key, now=now)
            counted.events(request_id, [(EventType.UNSUBSCRIBE.value, now)])
    if unsubscribed.first_time:
        await enqueue_event(
            session,
            event_type=EventType.UNSUBSCRIBE,
            request_id=request_id,
            occurred_at=now,
            details={},
            now=now,
        )
    topic = f" (topic {unsubscribed.topic_id})" if unsubscribed.topic_id else ""
    await suppression.suppress(
        session,
        [unsubscribed.recipient_key],
        SuppressionReason.UNSUBSCRIBE,
        detail=f"one-click unsubscribe from request {request_id}{topic}",
        now=now,
    )
    return unsubscribed.recipient_key
