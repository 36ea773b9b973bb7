"""Finished webhook deliveries are deleted after their retention; pending ones never are."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ses_sender.composition import Runtime
from ses_sender.models import DeliveryStatus, WebhookDelivery
from ses_sender.webhooks import repository
from ses_sender.webhooks.retention import PruneWebhookDeliveries
from ses_sender.webhooks.signing import new_secret

RETENTION = timedelta(days=7)


async def add_deliveries(runtime: Runtime, *rows: tuple[str, DeliveryStatus, timedelta]) -> None:
    """(event type, status, age) for each delivery, all for one webhook."""
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        webhook = await repository.insert_webhook(
            session, url="https://hooks.example.com/", secret=new_secret(), events=None, now=now
        )
        for event_type, status, age in rows:
            session.add(
                WebhookDelivery(
                    webhook_id=webhook.id,
                    event_type=event_type,
                    payload="{}",
                    status=status,
                    attempts=1,
                    due_at=now,
                    last_error=None,
                    created_at=now - age,
                    delivered_at=None,
                )
            )


async def test_finished_deliveries_past_their_retention_are_deleted(runtime: Runtime) -> None:
    old = RETENTION + timedelta(seconds=1)
    await add_deliveries(
        runtime,
        ("old delivered", DeliveryStatus.DELIVERED, old),
        ("old failed", DeliveryStatus.FAILED, old),
        ("old pending", DeliveryStatus.PENDING, old),
        ("recent delivered", DeliveryStatus.DELIVERED, RETENTION - timedelta(seconds=1)),
    )

    async with runtime.sessionmaker() as session, session.begin():
        await PruneWebhookDeliveries(RETENTION).run(session, now=runtime.clock.now())

    async with runtime.sessionmaker() as session:
        left = set(await session.scalars(select(WebhookDelivery.event_type)))
    assert left == {"old pending", "recent delivered"}
