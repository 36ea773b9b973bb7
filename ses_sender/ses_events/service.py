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
from ses_sender.models import Request
from ses_sender.ses_events import repository
from ses_sender.ses_events.repository import earliest, if_earlier
from ses_sender.ses_events.schemas import SesEvent, SesEventError, parse_ses_event
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG

log = logging.getLogger(__name__)

# SES's own open and click tracking, kept apart from our pixel's "Open" in the stats.
# Events for other senders' mail on a shared topic wait forever; only recent ones are looked at.
STRANDED_LOOKBACK = timedelta(days=1)
STRANDED_BATCH = 1_000

_STATUS_OF_SES_EVENT = {"Open": "SesOpen", "Click": "SesClick"}
# Request ids are BIGINT (at most 2**63 - 1, 19 digits); every 18-digit number fits.
_MAX_ID_DIGITS = 18


class Ingested(enum.StrEnum):
    STORED = "ok"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


async def ingest_notification(
    session: AsyncSession, notification: SnsMessage, *, now: datetime
) -> Ingested:
    try:
        event = parse_ses_event(notification.message)
    except SesEventError as error:
        raise InvalidInput(f"Message: not an SES event: {error.reason}") from None
    if event.ses_message_id is None or event.occurred_at is None:
        return Ingested.IGNORED  # SES's test notification when a topic is set: no mail
    request_id = await _find_request(session, event)
    stored = await repository.insert_result_once(
        session,
        sns_message_id=notification.message_id,
        request_id=request_id,
        status=_STATUS_OF_SES_EVENT.get(event.event_type, event.event_type),
        ses_message_id=event.ses_message_id,
        recipient=event.recipients[0] if event.recipients else None,
        occurred_at=event.occurred_at,
        raw=notification.message,
        now=now,
    )
    if not stored:
        return Ingested.DUPLICATE
    if request_id is None:
        # Its send is not recorded yet; `adopt_waiting_events` applies it when it is.
        log.info(
            "SES %s for unknown message %s kept for later", event.event_type, event.ses_message_id
        )
    else:
        await _apply(session, request_id, event)
        # SES reports only mail it accepted: a row requeued after its worker died (or a send
        # that timed out) is Sent, and is not sent again.
        await delivery_repository.record_sent_by_ses(
            session,
            request_id,
            message_id=event.ses_message_id,
            sent_at=event.occurred_at,
            now=now,
        )
    return Ingested.STORED


async def adopt_waiting_events(session: AsyncSession, request_id: int, ses_message_id: str) -> None:
    for _status, raw in await repository.adopt_waiting_results(session, request_id, ses_message_id):
        await _apply(session, request_id, parse_ses_event(raw))


async def adopt_stranded_events(session: AsyncSession, *, now: datetime) -> int:
    """Attach recent waiting events whose send has been recorded since; how many sends."""
    matches = await repository.stranded_matches(
        session, since=now - STRANDED_LOOKBACK, limit=STRANDED_BATCH
    )
    for request_id, message_id in matches:
        await adopt_waiting_events(session, request_id, message_id)
    return len(matches)


async def waiting_message_ids(session: AsyncSession, message_ids: Iterable[str]) -> list[str]:
    """Which of these just-sent messages already have events waiting for them."""
    ids = list(message_ids)
    return await repository.message_ids_with_waiting_results(session, ids) if ids else []


async def _find_request(session: AsyncSession, event: SesEvent) -> int | None:
    # Our tag names the request even before its message id is stored (event publishing only).
    for tagged in event.tags.get(REQUEST_ID_TAG, []):
        # ASCII and at most 18 digits: isdigit() alone accepts "²" (int() then raises) and ids
        # beyond BIGINT, which the database refuses; either would answer SNS 500 until it gives up.
        if tagged.isascii() and tagged.isdigit() and len(tagged) <= _MAX_ID_DIGITS:
            found = await repository.existing_request_id(session, int(tagged))
            if found is not None:
                return found
    if event.ses_message_id is None:
        return None
    return await repository.request_id_by_message_id(session, event.ses_message_id)


async def _apply(session: AsyncSession, request_id: int, event: SesEvent) -> None:
    changes = summary_changes(event)
    if changes:
        await repository.update_summary(session, request_id, changes)


def summary_changes(event: SesEvent) -> dict[str, Any]:
    at = event.occurred_at
    if at is None:
        return {}
    match event.event_type:
        case "Delivery":
            return {"delivered_at": earliest(Request.delivered_at, at)}
        case "Bounce":
            kind = "/".join(part for part in (event.bounce_type, event.bounce_subtype) if part)
            return {
                "bounced_at": earliest(Request.bounced_at, at),
                "bounce_type": if_earlier(
                    Request.bounced_at,
                    at,
                    literal(kind or None, type_=String()),
                    Request.bounce_type,
                ),
            }
        case "Complaint":
            return {
                "complained_at": earliest(Request.complained_at, at),
                "complaint_type": if_earlier(
                    Request.complained_at,
                    at,
                    literal(event.complaint_feedback_type, type_=String()),
                    Request.complaint_type,
                ),
            }
        case "Reject":
            return {"rejected_at": earliest(Request.rejected_at, at)}
        case "DeliveryDelay":
            return {"delayed_at": earliest(Request.delayed_at, at)}
        case _:
            return {}
