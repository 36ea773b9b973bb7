"""Taking in SES events: store each once, attach it to its request, update the summary."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, literal
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.delivery import repository as delivery_repository
from ses_sender.errors import InvalidInput
from ses_sender.messages.addresses import recipient_key
from ses_sender.models import Outcome, Request
from ses_sender.ses_events import repository
from ses_sender.ses_events.repository import at_least, earliest, if_earlier
from ses_sender.ses_events.schemas import SesEvent, SesEventError, parse_ses_event
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.suppression import service as suppression
from ses_sender.suppression.service import SoftBounceRule
from ses_sender.webhooks.service import enqueue_event

log = logging.getLogger(__name__)

# SES's own open and click tracking, kept apart from our pixel's "Open" in the stats.
# Events for other senders' mail on a shared topic wait forever; only recent ones are looked at.
STRANDED_LOOKBACK = timedelta(days=1)
STRANDED_BATCH = 1_000

_STATUS_OF_SES_EVENT = {"Open": "SesOpen", "Click": "SesClick"}
# The recipient stored for an event that names nobody: the unique key needs a value.
NO_RECIPIENT = ""
# Request ids are BIGINT (at most 2**63 - 1, 19 digits); every 18-digit number fits.
_MAX_ID_DIGITS = 18


class Ingested(enum.StrEnum):
    STORED = "ok"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


async def ingest_notification(
    session: AsyncSession,
    notification: SnsMessage,
    *,
    soft_bounces: SoftBounceRule,
    now: datetime,
) -> Ingested:
    """Store the event once per recipient it names, apply it to each recipient's request, and
    suppress the addresses it says to, all in the caller's transaction."""
    try:
        event = parse_ses_event(notification.message)
    except SesEventError as error:
        raise InvalidInput(f"Message: not an SES event: {error.reason}") from None
    if event.ses_message_id is None or event.occurred_at is None:
        return Ingested.IGNORED  # SES's test notification when a topic is set: no mail
    requests = await _find_requests(session, event)
    recipients = {key: requests.get(key) for key in _recipient_keys(event)}
    stored = await repository.insert_results_once(
        session,
        sns_message_id=notification.message_id,
        recipients=recipients,
        status=result_status(event),
        ses_message_id=event.ses_message_id,
        occurred_at=event.occurred_at,
        raw=notification.message,
        now=now,
    )
    if not stored:
        return Ingested.DUPLICATE
    for recipient in stored:
        request_id = recipients[recipient]
        if request_id is None:
            # Its send is not recorded yet; `adopt_waiting_events` applies it when it is.
            log.info(
                "SES %s for unknown message %s kept for later",
                event.event_type,
                event.ses_message_id,
            )
            continue
        await _apply(session, request_id, event, now=now)
        # SES reports only mail it accepted: a row requeued after its worker died (or a send
        # that timed out) is Sent, and is not sent again.
        await delivery_repository.record_sent_by_ses(
            session,
            request_id,
            message_id=event.ses_message_id,
            sent_at=event.occurred_at,
            now=now,
        )
    addresses = [recipient for recipient in stored if recipient != NO_RECIPIENT]
    await suppression.record_feedback(session, event, addresses, rule=soft_bounces, now=now)
    return Ingested.STORED


def _recipient_keys(event: SesEvent) -> list[str]:
    """The keys of the addresses the event names, each once; [""] when it names none."""
    keys = dict.fromkeys(recipient_key(address) for address in event.recipients)
    return list(keys) or [NO_RECIPIENT]


async def adopt_waiting_events(
    session: AsyncSession, request_id: int, ses_message_id: str, *, now: datetime
) -> None:
    for _status, raw in await repository.adopt_waiting_results(session, request_id, ses_message_id):
        await _apply(session, request_id, parse_ses_event(raw), now=now)


async def adopt_stranded_events(session: AsyncSession, *, now: datetime) -> int:
    """Attach recent waiting events whose send has been recorded since; how many sends."""
    matches = await repository.stranded_matches(
        session, since=now - STRANDED_LOOKBACK, limit=STRANDED_BATCH
    )
    for request_id, message_id in matches:
        await adopt_waiting_events(session, request_id, message_id, now=now)
    return len(matches)


async def waiting_message_ids(session: AsyncSession, message_ids: Iterable[str]) -> list[str]:
    """Which of these just-sent messages already have events waiting for them."""
    ids = list(message_ids)
    return await repository.message_ids_with_waiting_results(session, ids) if ids else []


async def _find_requests(session: AsyncSession, event: SesEvent) -> dict[str, int]:
    """The requests the event is about, by recipient key."""
    found: dict[str, int] = {}
    # Our tag names the request even before its message id is stored (event publishing only).
    for tagged in event.tags.get(REQUEST_ID_TAG, []):
        # ASCII and at most 18 digits: isdigit() alone accepts "²" (int() then raises) and ids
        # beyond BIGINT, which the database refuses; either would answer SNS 500 until it gives up.
        if tagged.isascii() and tagged.isdigit() and len(tagged) <= _MAX_ID_DIGITS:
            request = await repository.request_by_id(session, int(tagged))
            if request is not None:
                request_id, key = request
                found[key] = request_id
                return found
    if event.ses_message_id is not None:
        for request_id, key in await repository.requests_by_message_id(
            session, event.ses_message_id
        ):
            found.setdefault(key, request_id)
    return found


def result_status(event: SesEvent) -> str:
    return _STATUS_OF_SES_EVENT.get(event.event_type, event.event_type)


async def _apply(session: AsyncSession, request_id: int, event: SesEvent, *, now: datetime) -> None:
    changes = summary_changes(event)
    if changes:
        await repository.update_summary(session, request_id, changes)
    if event.occurred_at is not None:
        # In this transaction: the event and its webhook deliveries are stored together or not.
        await enqueue_event(
            session,
            event_type=result_status(event),
            request_id=request_id,
            occurred_at=event.occurred_at,
            details=event.detail,
            now=now,
        )


def summary_changes(event: SesEvent) -> dict[str, Any]:
    """Each time keeps the earliest of its kind, the outcome the strongest: the summary comes
    out the same whatever order the events arrive in."""
    at = event.occurred_at
    if at is None:
        return {}
    outcome = outcome_of(event)
    changes = {} if outcome is None else {"outcome": at_least(Request.outcome, outcome)}
    match event.event_type:
        case "Delivery":
            changes["delivered_at"] = earliest(Request.delivered_at, at)
        case "Bounce":
            changes["bounced_at"] = earliest(Request.bounced_at, at)
            changes["bounce_type"] = if_earlier(
                Request.bounced_at,
                at,
                literal(event.bounce_kind, type_=String()),
                Request.bounce_type,
            )
        case "Complaint":
            changes["complained_at"] = earliest(Request.complained_at, at)
            changes["complaint_type"] = if_earlier(
                Request.complained_at,
                at,
                literal(event.complaint_feedback_type, type_=String()),
                Request.complaint_type,
            )
        case "Reject":
            changes["rejected_at"] = earliest(Request.rejected_at, at)
        case "DeliveryDelay":
            changes["delayed_at"] = earliest(Request.delayed_at, at)
    return changes


def outcome_of(event: SesEvent) -> Outcome | None:
    """What the event says became of the email; None for events that say nothing of it (Send,
    opens, clicks, rendering failures, subscriptions)."""
    match event.event_type:
        case "Complaint":
            return Outcome.COMPLAINED
        case "Bounce":
            return Outcome.BOUNCED if event.is_permanent_bounce else Outcome.SOFT_BOUNCED
        case "Reject":
            return Outcome.REJECTED
        case "Delivery":
            return Outcome.DELIVERED
        case "DeliveryDelay":
            return Outcome.DELAYED
        case _:
            return None
