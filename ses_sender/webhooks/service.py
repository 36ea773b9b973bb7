"""Webhooks: who gets which events, what each event says, and what happens after each attempt.

Every event is queued for its webhooks in the transaction that attaches it to its request, so
nothing is lost or queued twice; the delivery loop (`webhooks/worker.py`) POSTs it later,
outside the request that took the event in.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.errors import Conflict, InvalidInput, ServiceError
from ses_sender.models import DeliveryStatus, EventType, Webhook
from ses_sender.webhooks import network, repository
from ses_sender.webhooks.repository import ClaimedDelivery, EnabledWebhook, NewDelivery
from ses_sender.webhooks.retry import WebhookRetryPolicy
from ses_sender.webhooks.schemas import (
    MAX_URL_LENGTH,
    MAX_WEBHOOKS,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
)
from ses_sender.webhooks.signing import new_secret

_LOOPBACK_NAMES = {"localhost"}
_ALLOW_PRIVATE_HINT = "set WEBHOOK_ALLOW_PRIVATE=true for receivers in your own network"
EVENT_TYPES = tuple(EventType)  # what a webhook may ask for


# -- managing webhooks ---------------------------------------------------------------------


async def create_webhook(
    session: AsyncSession, data: WebhookIn, *, now: datetime, allow_private: bool
) -> Webhook:
    url = check_url(data.url, allow_private=allow_private)
    events = check_events(data.events)
    if not allow_private:
        host = urlsplit(url).hostname or ""
        try:
            await network.check_resolves_outside(host)
        except network.InsideAddress as error:
            raise InvalidInput(f"url: {error}; {_ALLOW_PRIVATE_HINT}") from None
    if await repository.count_webhooks(session) >= MAX_WEBHOOKS:
        raise Conflict(f"url: at most {MAX_WEBHOOKS} webhooks; delete one first")
    return await repository.insert_webhook(
        session,
        url=url,
        secret=new_secret(),
        events=None if events is None else json.dumps(events),
        now=now,
    )


async def list_webhooks(session: AsyncSession) -> list[WebhookOut]:
    return [describe(webhook) for webhook in await repository.all_webhooks(session)]


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    webhook_id: int
    event_type: str
    attempts: int
    error: str
    queued_at: datetime
    given_up: bool  # False: it is tried again later


async def recent_failures(session: AsyncSession, limit: int) -> list[DeliveryFailure]:
    """The newest failed deliveries, given up or still retried, newest first."""
    return [
        DeliveryFailure(
            webhook_id=delivery.webhook_id,
            event_type=delivery.event_type,
            attempts=delivery.attempts,
            error=delivery.last_error or "",
            queued_at=delivery.created_at,
            given_up=delivery.status == DeliveryStatus.FAILED,
        )
        for delivery in await repository.recent_failures(session, limit)
    ]


async def delete_webhook(session: AsyncSession, webhook_id: int) -> None:
    """Its queued deliveries go with it."""
    if not await repository.delete_webhook(session, webhook_id):
        raise ServiceError(f"webhook {webhook_id} not found", status_code=404)


def describe(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        url=without_credentials(webhook.url),
        events=_stored_events(webhook.events),
        enabled=webhook.enabled,
        disabled_reason=webhook.disabled_reason,
        created_at=webhook.created_at,
    )


def describe_created(webhook: Webhook) -> WebhookCreatedOut:
    return WebhookCreatedOut(**describe(webhook).model_dump(), secret=webhook.secret)


def without_credentials(url: str) -> str:
    """The URL as shown back: a user:password@ part stored before they were refused is left out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_url(url: str, *, allow_private: bool) -> str:
    """https, or http to this machine only (a receiver in development); no credentials; and,
    unless `allow_private`, a host outside the network."""
    url = url.strip()
    wrong = InvalidInput(
        "url: must be an absolute https:// URL (http:// only to a loopback address such as "
        "127.0.0.1 or localhost)"
    )
    if not url or len(url) > MAX_URL_LENGTH or not url.isprintable() or " " in url:
        raise InvalidInput(f"url: 1 to {MAX_URL_LENGTH} printable characters, no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        raise wrong from None
    host = parts.hostname
    if not host or parts.scheme not in ("https", "http"):
        raise wrong
    if port == 0:
        raise InvalidInput("url: port 0 is no port a receiver listens on")
    if "@" in parts.netloc:
        raise InvalidInput(
            "url: must not hold credentials (user:password@); check the X-Ses-Sender-Signature "
            "headers instead"
        )
    if parts.scheme == "http" and not _is_loopback(host):
        raise wrong
    if not allow_private:
        try:
            network.check_host(host)
        except network.InsideAddress as error:
            raise InvalidInput(f"url: {error}; {_ALLOW_PRIVATE_HINT}") from None
    return url


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_events(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    if not events:
        raise InvalidInput("events: name at least one event type, or leave events out for all")
    for index, name in enumerate(events):
        if name not in EVENT_TYPES:
            raise InvalidInput(
                f"events[{index}]: unknown event type {name!r}; one of {', '.join(EVENT_TYPES)}"
            )
    return list(dict.fromkeys(events))


def _wants(events: list[str] | None, event_type: str) -> bool:
    return events is None or event_type in events


def _stored_events(events: str | None) -> list[str] | None:
    if events is None:
        return None
    names: list[str] = json.loads(events)
    return names


# -- queueing events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """Something that happened to one of our requests, to tell the webhooks that want it."""

    event_type: str
    request_id: int
    topic_id: str
    email: str
    occurred_at: datetime
    details: dict[str, Any]
    now: datetime  # when it came in: the deliveries are due from then


async def enqueue_event(
    session: AsyncSession,
    *,
    event_type: str,
    request_id: int,
    occurred_at: datetime,
    details: dict[str, Any],
    now: datetime,
) -> int:
    """Queue one delivery of this event per enabled webhook that wants it; how many.

    One small read, plus one insert when a webhook wants the event.
    """
    subscribed = await repository.subscriptions(session, request_id)
    if not subscribed:
        return 0
    event = RequestEvent(
        event_type=event_type,
        request_id=request_id,
        topic_id=subscribed[0].topic_id,
        email=subscribed[0].email,
        occurred_at=occurred_at,
        details=details,
        now=now,
    )
    webhooks = [EnabledWebhook(s.webhook_id, s.events) for s in subscribed]
    return await _insert_deliveries(session, [event], webhooks)


async def enqueue_events(session: AsyncSession, events: Sequence[RequestEvent]) -> int:
    """Queue one delivery of each event per enabled webhook that wants it; how many.

    On the SNS path, for all the events of a batch: one small read, plus one insert when a
    webhook wants one of them.
    """
    if not events:
        return 0
    return await _insert_deliveries(session, events, await repository.enabled_webhooks(session))


async def _insert_deliveries(
    session: AsyncSession, events: Sequence[RequestEvent], webhooks: Sequence[EnabledWebhook]
) -> int:
    wanted = [(webhook.id, _stored_events(webhook.events)) for webhook in webhooks]
    deliveries = []
    for event in events:
        targets = [webhook_id for webhook_id, names in wanted if _wants(names, event.event_type)]
        if targets:
            payload = event_payload(
                event_type=event.event_type,
                request_id=event.request_id,
                topic_id=event.topic_id,
                email=event.email,
                occurred_at=event.occurred_at,
                details=event.details,
            )
            deliveries += [
                NewDelivery(webhook_id, event.event_type, payload, event.now)
                for webhook_id in targets
            ]
    if deliveries:
        await repository.insert_deliveries(session, deliveries)
    return len(deliveries)


def event_payload(
    *,
    event_type: str,
    request_id: int,
    topic_id: str,
    email: str,
    occurred_at: datetime,
    details: dict[str, Any],
) -> str:
    """The body POSTed, byte for byte: kept as queued, so every retry signs the same bytes."""
    return json.dumps(
        {
            "type": event_type,
            "requestId": request_id,
            "topicId": topic_id,
            "email": email,
            "time": iso_time(occurred_at),
            "details": details,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- after an attempt ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class NotDelivered:
    error: str


Attempt = Delivered | NotDelivered


async def record_attempt(
    session: AsyncSession,
    delivery: ClaimedDelivery,
    attempt: Attempt,
    *,
    retry: WebhookRetryPolicy,
    now: datetime,
) -> str | None:
    """Delivered, retried later, or given up; why the webhook was disabled, if it was."""
    if isinstance(attempt, Delivered):
        await repository.mark_delivered(session, delivery.id, now=now)
        return None
    due_at = retry.next_attempt(delivery.attempts, created_at=delivery.created_at, now=now)
    if due_at is not None:
        await repository.schedule_retry(session, delivery.id, due_at=due_at, error=attempt.error)
        return None
    await repository.mark_failed(session, delivery.id, error=attempt.error)
    return await _disable_if_failing(session, delivery, attempt.error, now=now)


async def _disable_if_failing(
    session: AsyncSession, delivery: ClaimedDelivery, error: str, *, now: datetime
) -> str | None:
    """A delivery given up after a day of retries, and nothing delivered to its webhook in
    that day: the endpoint is failing, not one payload. Disable it rather than keep queueing."""
    if await repository.delivered_since(session, delivery.webhook_id, delivery.created_at):
        return None
    reason = (
        f"no delivery succeeded since {iso_time(delivery.created_at)} "
        f"({delivery.attempts} attempts at one event); last error: {error}"
    )
    await repository.disable_webhook(session, delivery.webhook_id, reason=reason, now=now)
    return reason


async def fail_orphan(session: AsyncSession, delivery: ClaimedDelivery) -> None:
    """A delivery whose webhook was disabled or deleted after it was claimed."""
    await repository.mark_failed(session, delivery.id, error="webhook disabled")


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> tuple[list[ClaimedDelivery], dict[int, repository.Target]]:
    deliveries = await repository.claim_due(session, now=now, lease_until=lease_until, limit=limit)
    targets = (
        await repository.enabled_targets(session, {d.webhook_id for d in deliveries})
        if deliveries
        else {}
    )
    return deliveries, targets
