"""SQL for webhooks and their delivery queue (claimed under a lease, like the email queue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import OneTrip
from ses_sender.db.pruning import delete_some
from ses_sender.db.queue import claim_statement
from ses_sender.models import DeliveryStatus, Request, Webhook, WebhookDelivery

# Core tables for the statements built once: they run for every batch of SES events.
_webhooks = cast(Table, Webhook.__table__)
_deliveries = cast(Table, WebhookDelivery.__table__)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    webhook_id: int
    event_type: str
    payload: str
    attempts: int  # counting this one
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    secret: str


async def insert_webhook(
    session: AsyncSession, *, url: str, secret: str, events: str | None, now: datetime
) -> Webhook:
    webhook = Webhook(
        url=url,
        secret=secret,
        events=events,
        enabled=True,
        disabled_reason=None,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    await session.flush()
    return webhook


async def count_webhooks(session: AsyncSession) -> int:
    counted: int = await session.scalar(select(func.count()).select_from(Webhook)) or 0
    return counted


async def all_webhooks(session: AsyncSession) -> Sequence[Webhook]:
    return (await session.scalars(select(Webhook).order_by(Webhook.id))).all()


async def delete_webhook(session: AsyncSession, webhook_id: int) -> bool:
    deleted = await session.scalars(
        delete(Webhook).where(Webhook.id == webhook_id).returning(Webhook.id)
    )
    return deleted.first() is not None


@dataclass(frozen=True, slots=True)
class Subscription:
    webhook_id: int
    events: str | None  # as stored: a JSON list, or None for every type
    topic_id: str
    email: str


async def subscriptions(session: AsyncSession, request_id: int) -> list[Subscription]:
    """Every enabled webhook, each with the request's topic and address: one round trip for
    one event, and none of the request read when there is no webhook."""
    rows = await session.execute(
        select(Webhook.id, Webhook.events, Request.topic_id, Request.recipient_key)
        .join(Request, Request.id == request_id)
        .where(Webhook.enabled)
    )
    return [Subscription(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class EnabledWebhook:
    id: int
    events: str | None  # as stored: a JSON list, or None for every type


# Read in every transaction that records events (the SNS path, opens and clicks): in one trip
# to SQLite's driver thread. Not kept in the process: another replica may add a webhook.
_ENABLED_WEBHOOKS = OneTrip(select(_webhooks.c.id, _webhooks.c.events).where(_webhooks.c.enabled))


async def enabled_webhooks(session: AsyncSession) -> list[EnabledWebhook]:
    rows = await _ENABLED_WEBHOOKS.run(await session.connection())
    return [EnabledWebhook(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    webhook_id: int
    event_type: str
    payload: str
    now: datetime  # queued at, and due at


_INSERT_DELIVERY = insert(_deliveries).values(
    status=DeliveryStatus.PENDING,
    attempts=0,
    due_at=bindparam("b_now"),
    created_at=bindparam("b_now"),
)


async def insert_deliveries(session: AsyncSession, deliveries: Sequence[NewDelivery]) -> None:
    await session.execute(
        _INSERT_DELIVERY,
        [
            {
                "webhook_id": delivery.webhook_id,
                "event_type": delivery.event_type,
                "payload": delivery.payload,
                "b_now": delivery.now,
            }
            for delivery in deliveries
        ],
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Take up to `limit` due deliveries in one statement; other processes skip what we lock.

    A claimed row stays PENDING with `due_at` moved to the lease's end: if this process dies
    mid-delivery, the row is simply due again when the lease runs out.
    """
    claimed = await session.execute(
        claim_statement(
            WebhookDelivery,
            due=(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.due_at <= now,
            ),
            order_by=(WebhookDelivery.due_at, WebhookDelivery.id),
            limit=limit,
            values={"due_at": lease_until, "attempts": WebhookDelivery.attempts + 1},
            returning=(
                WebhookDelivery.id,
                WebhookDelivery.webhook_id,
                WebhookDelivery.event_type,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
                WebhookDelivery.created_at,
            ),
        )
    )
    return sorted((ClaimedDelivery(*row) for row in claimed), key=lambda d: d.id)


async def enabled_targets(session: AsyncSession, webhook_ids: set[int]) -> dict[int, Target]:
    rows = await session.execute(
        select(Webhook.id, Webhook.url, Webhook.secret).where(
            Webhook.id.in_(webhook_ids), Webhook.enabled
        )
    )
    return {webhook_id: Target(url, secret) for webhook_id, url, secret in rows}


async def mark_delivered(session: AsyncSession, delivery_id: int, *, now: datetime) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def schedule_retry(
    session: AsyncSession, delivery_id: int, *, due_at: datetime, error: str
) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(due_at=due_at, last_error=error)
        .execution_options(synchronize_session=False)
    )


async def mark_failed(session: AsyncSession, delivery_id: int, *, error: str) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.FAILED, last_error=error)
        .execution_options(synchronize_session=False)
    )


async def delivered_since(session: AsyncSession, webhook_id: int, since: datetime) -> bool:
    found = await session.scalar(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.status == DeliveryStatus.DELIVERED,
            WebhookDelivery.delivered_at >= since,
        )
        .limit(1)
    )
    return found is not None


async def disable_webhook(
    session: AsyncSession, webhook_id: int, *, reason: str, now: datetime
) -> int:
    """Disable it and fail what is still queued for it; how many deliveries that failed."""
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    failed = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.FAILED, last_error="webhook disabled")
        .execution_options(synchronize_session=False)
    )
    assert isinstance(failed, CursorResult)
    return failed.rowcount


async def recent_failures(session: AsyncSession, limit: int) -> Sequence[WebhookDelivery]:
    """The newest deliveries that failed: given up, or waiting to be tried again."""
    failed = (WebhookDelivery.status == DeliveryStatus.FAILED) | (
        (WebhookDelivery.status == DeliveryStatus.PENDING) & WebhookDelivery.last_error.is_not(None)
    )
    query = select(WebhookDelivery).where(failed).order_by(WebhookDelivery.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def delete_finished_deliveries(
    session: AsyncSession, *, created_before: datetime, limit: int
) -> int:
    """Up to `limit` deliveries delivered or failed, queued before `created_before`."""
    return await delete_some(
        session,
        WebhookDelivery.id,
        WebhookDelivery.status.in_((DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)),
        WebhookDelivery.created_at < created_before,
        limit=limit,
    )
