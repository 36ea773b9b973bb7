"""Taking in SES events: store each once, attach it to its request, update the summary."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.cursor import cursor_row_id, cursor_time, decode_cursor, encode_cursor
from ses_sender.delivery import service as delivery
from ses_sender.delivery.emails import ProviderSend
from ses_sender.errors import InvalidInput
from ses_sender.messages.addresses import recipient_key
from ses_sender.models import EventType, Outcome, RequestChange, RequestStatus
from ses_sender.ses_events import repository
from ses_sender.ses_events.repository import (
    EventMark,
    EventRow,
    PayloadRow,
    RequestRef,
    SummaryChange,
)
from ses_sender.ses_events.schemas import (
    SesEvent,
    SesEventError,
    SesEventType,
    UnmatchedEventOut,
    UnmatchedEventsOut,
    parse_ses_event,
)
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.stats import counters
from ses_sender.stats import service as stats
from ses_sender.suppression import service as suppression
from ses_sender.suppression.service import Feedback, FeedbackKind, SoftBounceRule
from ses_sender.webhooks.service import RequestEvent, enqueue_events

log = logging.getLogger(__name__)

# Events for other senders' mail on a shared topic wait forever; only recent ones are looked at.
STRANDED_LOOKBACK = timedelta(days=1)
STRANDED_BATCH = 1_000

# How our event log names each of SES's event types: SES's own open and click tracking is kept
# apart from ours.
_EVENT_TYPES = {
    SesEventType.SEND: EventType.SEND,
    SesEventType.REJECT: EventType.REJECT,
    SesEventType.BOUNCE: EventType.BOUNCE,
    SesEventType.COMPLAINT: EventType.COMPLAINT,
    SesEventType.DELIVERY: EventType.DELIVERY,
    SesEventType.OPEN: EventType.SES_OPEN,
    SesEventType.CLICK: EventType.SES_CLICK,
    SesEventType.RENDERING_FAILURE: EventType.RENDERING_FAILURE,
    SesEventType.DELIVERY_DELAY: EventType.DELIVERY_DELAY,
    SesEventType.SUBSCRIPTION: EventType.SUBSCRIPTION,
}
# The summary time each event type that has an outcome sets.
_SUMMARY_TIME_FIELDS = {
    SesEventType.DELIVERY: "delivered_at",
    SesEventType.BOUNCE: "bounced_at",
    SesEventType.COMPLAINT: "complained_at",
    SesEventType.REJECT: "rejected_at",
    SesEventType.DELIVERY_DELAY: "delayed_at",
}
# The first-time column of the counters (stats/counters.py) that SES's opens and clicks set.
_FIRST_TIME_FIELDS = {EventType.SES_OPEN: "opened_at", EventType.SES_CLICK: "clicked_at"}
# What the counters are given of a request an event changed nothing of (shared: see `_changes`).
_NOTHING: Mapping[str, Any] = MappingProxyType({})
# The recipient stored for an event that names nobody: the unique key needs a value.
NO_RECIPIENT = ""
SETUP_AWS = "setup-aws"  # who recorded a trusted topic
# Request ids are BIGINT (at most 2**63 - 1, 19 digits); every 18-digit number fits.
_MAX_ID_DIGITS = 18


class Ingested(enum.StrEnum):
    STORED = "ok"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Received:
    """A verified notification, and when it came in: the `now` of everything it writes."""

    notification: SnsMessage
    now: datetime


@dataclass(frozen=True, slots=True)
class _MailEvent:
    """A received event about a message SES sent (its test notification is about none)."""

    received: Received
    event: SesEvent
    ses_message_id: str
    occurred_at: datetime
    recipients: list[str]  # the keys it names, each once; [NO_RECIPIENT] when it names none

    @property
    def sns_message_id(self) -> str:
        return self.received.notification.message_id


@dataclass(frozen=True, slots=True)
class _Stored:
    """An event just stored, for the recipients it had not been stored for before."""

    event: _MailEvent
    recipients: list[str]
    requests: dict[str, RequestRef]  # those found, by recipient key


@dataclass(frozen=True, slots=True)
class _Applied:
    """An event to apply to one of our requests."""

    request: RequestRef
    event: SesEvent
    now: datetime


async def ingest_notification(
    session: AsyncSession,
    notification: SnsMessage,
    *,
    soft_bounces: SoftBounceRule,
    now: datetime,
) -> Ingested:
    """`ingest_notifications` for one notification."""
    [outcome] = await ingest_notifications(
        session, [Received(notification, now)], soft_bounces=soft_bounces
    )
    return outcome


async def ingest_notifications(
    session: AsyncSession, batch: Sequence[Received], *, soft_bounces: SoftBounceRule
) -> list[Ingested]:
    """Store each event once per recipient it names (what it carried once per SNS message),
    apply it to each recipient's request, and suppress the addresses it says to, all in the
    caller's transaction; each one's outcome.

    The statements serve the whole batch (see repository.py), so the batch behaves as its
    notifications would in concurrent transactions: none sees what another changes in its
    request. A notification that is not an SES event fails the whole batch (InvalidInput).
    """
    events = [_mail_event(received) for received in batch]
    # SNS may deliver a message again before the first delivery is answered: the first copy
    # in the batch stores it, the others are duplicates of it.
    firsts: dict[str, _MailEvent] = {}
    for event in events:
        if event is not None:
            firsts.setdefault(event.sns_message_id, event)
    firsts_found, counted = await _find_requests(session, list(firsts.values()))
    stored = await _store(session, list(firsts.values()), firsts_found)
    await _act_on(session, stored, soft_bounces=soft_bounces)
    await stats.count_changes(session, _changes(stored, counted))
    unanswered = {item.event.sns_message_id for item in stored}
    outcomes = []
    for event in events:
        if event is None:
            outcomes.append(Ingested.IGNORED)
        elif event.sns_message_id in unanswered:
            outcomes.append(Ingested.STORED)
            unanswered.discard(event.sns_message_id)
        else:
            outcomes.append(Ingested.DUPLICATE)
    return outcomes


def _mail_event(received: Received) -> _MailEvent | None:
    """None for SES's test notification when a topic is set: no mail, nothing to store."""
    try:
        event = parse_ses_event(received.notification.message)
    except SesEventError as error:
        raise InvalidInput(f"Message: not an SES event: {error.reason}") from None
    if event.ses_message_id is None or event.occurred_at is None:
        return None
    return _MailEvent(
        received, event, event.ses_message_id, event.occurred_at, _recipient_keys(event)
    )


async def _store(
    session: AsyncSession, events: Sequence[_MailEvent], found: Sequence[dict[str, RequestRef]]
) -> list[_Stored]:
    """Store each event once per recipient key (`found`: the requests each is about), and its
    payload once; those stored now, for the recipients that were."""
    stored = await repository.insert_results_once(
        session,
        [
            _row(event, recipient, requests.get(recipient))
            for event, requests in zip(events, found, strict=True)
            for recipient in event.recipients
        ],
    )
    new = [
        _Stored(event, recipients, requests)
        for event, requests in zip(events, found, strict=True)
        if (recipients := [r for r in event.recipients if (event.sns_message_id, r) in stored])
    ]
    # Only for events stored now: a redelivery after its payload was pruned stores nothing.
    await repository.insert_payloads_once(
        session,
        [
            PayloadRow(
                item.event.sns_message_id,
                item.event.received.notification.message,
                item.event.received.now,
            )
            for item in new
        ],
    )
    return new


async def _act_on(
    session: AsyncSession, stored: Sequence[_Stored], *, soft_bounces: SoftBounceRule
) -> None:
    """Apply each event to its recipients' requests and record the sends it proves.

    An event acts only on requests of ours, matched by its recipient: one that names anybody
    else (another sender on the account, or a send not recorded yet) changes nothing and waits,
    stored, for review or for `adopt_waiting_events`.
    """
    applied: list[_Applied] = []
    sent: dict[int, ProviderSend] = {}
    for item in stored:
        event, now = item.event, item.event.received.now
        unmatched = 0
        for recipient in item.recipients:
            request = item.requests.get(recipient)
            if request is None:
                unmatched += 1
                continue
            applied.append(_Applied(request, event.event, now))
            # SES reports only mail it accepted: a row requeued after its worker died (or a
            # send that timed out) is Sent, and is not sent again.
            sent.setdefault(request.id, ProviderSend(event.ses_message_id, event.occurred_at, now))
        if unmatched:
            log.info(
                "SES %s of message %s names %d recipients no request of ours matches (yet): "
                "kept, unapplied",
                event.event.event_type,
                event.ses_message_id,
                unmatched,
            )
    await _apply(session, applied, soft_bounces=soft_bounces)
    await delivery.record_provider_sends(session, sent)


def _row(event: _MailEvent, recipient: str, request: RequestRef | None) -> EventRow:
    return EventRow(
        sns_message_id=event.sns_message_id,
        recipient=recipient,
        request_id=None if request is None else request.id,
        status=result_status(event.event),
        ses_message_id=event.ses_message_id,
        occurred_at=event.occurred_at,
        created_at=event.received.now,
    )


def _recipient_keys(event: SesEvent) -> list[str]:
    """The keys of the addresses the event names, each once; [""] when it names none."""
    keys = dict.fromkeys(recipient_key(address) for address in event.recipients)
    return list(keys) or [NO_RECIPIENT]


async def adopt_waiting_events(
    session: AsyncSession,
    request_id: int,
    ses_message_id: str,
    *,
    soft_bounces: SoftBounceRule,
    now: datetime,
) -> None:
    async with stats.counting(session, [request_id]) as counted:
        adopted = await repository.adopt_waiting_results(session, request_id, ses_message_id)
        if not adopted:
            return
        kept = await repository.payloads(session, adopted)
        if pruned := len(adopted) - len(kept):
            log.warning(
                "%d events of message %s waited longer than EVENT_RAW_RETENTION_DAYS for their "
                "send: attached, unapplied",
                pruned,
                ses_message_id,
            )
        request = (await repository.requests_by_ids(session, [request_id]))[request_id]
        events = [parse_ses_event(raw) for raw in kept.values()]
        counted.events(
            request_id,
            [(result_status(event), event.occurred_at) for event in events if event.occurred_at],
        )
        await _apply(
            session, [_Applied(request, event, now) for event in events], soft_bounces=soft_bounces
        )


async def adopt_stranded_events(
    session: AsyncSession, *, soft_bounces: SoftBounceRule, now: datetime
) -> int:
    """Attach recent waiting events whose send has been recorded since; how many sends."""
    matches = await repository.stranded_matches(
        session, since=now - STRANDED_LOOKBACK, limit=STRANDED_BATCH
    )
    for request_id, message_id in matches:
        await adopt_waiting_events(
            session, request_id, message_id, soft_bounces=soft_bounces, now=now
        )
    return len(matches)


async def waiting_message_ids(session: AsyncSession, message_ids: Iterable[str]) -> list[str]:
    """Which of these just-sent messages already have events waiting for them."""
    ids = list(message_ids)
    return await repository.message_ids_with_waiting_results(session, ids) if ids else []


async def _find_requests(
    session: AsyncSession, events: Sequence[_MailEvent]
) -> tuple[list[dict[str, RequestRef]], dict[int, dict[str, Any]]]:
    """The requests each event is about, by recipient key; and, by id, what the counters need
    of each request found, as it was (their rows are locked: see `_changes`)."""
    tagged = [_tagged_request_ids(event.event) for event in events]
    candidates = await repository.requests_for_events(
        session, {i for ids in tagged for i in ids}, {event.ses_message_id for event in events}
    )
    found: list[dict[str, RequestRef]] = []
    for ids in tagged:
        request = next((candidates.by_id[i] for i in ids if i in candidates.by_id), None)
        found.append({} if request is None else {request.recipient_key: request})
    # Without a tag naming a request, the message id: SES sent each of ours as its own message.
    for event, requests in zip(events, found, strict=True):
        if not requests:
            for request in candidates.by_message_id.get(event.ses_message_id, []):
                requests.setdefault(request.recipient_key, request)
    return found, candidates.counted


def _changes(stored: Sequence[_Stored], counted: dict[int, dict[str, Any]]) -> list[RequestChange]:
    """What `_act_on` did to each request, for the counters: worked out from its row as it was
    (locked since) and the events stored now, by the rules its statements follow (each time
    the earliest, the outcome the strongest, a send recorded once: `summary_change`,
    `repository.if_earlier`, `delivery.record_provider_sends`), not read again."""
    events: dict[int, list[_MailEvent]] = {}
    requests: dict[int, RequestRef] = {}
    for item in stored:
        for recipient in item.recipients:
            request = item.requests.get(recipient)
            if request is not None:
                events.setdefault(request.id, []).append(item.event)
                requests[request.id] = request
    changes = []
    for request_id, mail_events in events.items():
        before = counted[request_id]
        after = dict(before)
        changed: set[str] = set()  # the columns whose value the events change
        for mail_event in mail_events:
            event, at = mail_event.event, mail_event.occurred_at
            event_type = result_status(event)
            bit = counters.EVENT_BITS[event_type]
            if not after["event_types"] & bit:
                after["event_types"] |= bit
                changed.add("event_types")
            # `summary_change`'s time and outcome, without making one (this runs per event).
            outcome = outcome_of(event)
            summary_time = None if outcome is None else _SUMMARY_TIME_FIELDS[event.event_type]
            for field in (_FIRST_TIME_FIELDS.get(event_type), summary_time):
                if field in after and (after[field] is None or after[field] > at):
                    after[field] = at
                    changed.add(field)
            if outcome is not None and (after["outcome"] is None or after["outcome"] < outcome):
                after["outcome"] = outcome
                changed.add("outcome")
        first = mail_events[0]
        if after["attempts"] > 0 and not (
            after["status"] == RequestStatus.SENT and after["message_id"] is not None
        ):
            sent = {
                "status": int(RequestStatus.SENT),
                "message_id": first.ses_message_id,
                "sent_at": first.occurred_at,
                "updated_at": first.received.now,
            }
            after.update(sent)
            changed.update(sent)
        request = requests[request_id]
        # Only what the counters read of this change: the columns changed and those the rules
        # reading them read beside (few: their shape is worked out per change). A change of
        # none (an event whose type the request had, say) shares one mapping: looked at once.
        columns = counters.columns_read_with(frozenset(changed))
        changes.append(
            RequestChange(
                request.topic_id,
                request.recipient_key,
                {column: before[column] for column in columns} if columns else _NOTHING,
                {column: after[column] for column in columns} if columns else _NOTHING,
                tuple((result_status(e.event), e.occurred_at) for e in mail_events),
            )
        )
    return changes


def _tagged_request_ids(event: SesEvent) -> list[int]:
    """The request ids our tag names (it names the request even before its message id is
    stored; event publishing only)."""
    # ASCII and at most 18 digits: isdigit() alone accepts "²" (int() then raises) and ids
    # beyond BIGINT, which the database refuses; either would answer SNS 500 until it gives up.
    return [
        int(tagged)
        for tagged in event.tags.get(REQUEST_ID_TAG, [])
        if tagged.isascii() and tagged.isdigit() and len(tagged) <= _MAX_ID_DIGITS
    ]


def result_status(event: SesEvent) -> EventType:
    return _EVENT_TYPES[event.event_type]


async def _apply(
    session: AsyncSession, applied: Sequence[_Applied], *, soft_bounces: SoftBounceRule
) -> None:
    """Update each request's summary, queue the webhook deliveries, and suppress the addresses
    the events say to, in the caller's transaction: stored together or not at all."""
    changes: list[SummaryChange] = []
    marks: list[EventMark] = []
    for item in applied:
        event_type = result_status(item.event)
        bit = counters.EVENT_BITS[event_type]
        change = summary_change(item.event, item.request.id)
        if change is not None:
            changes.append(dataclasses.replace(change, event_bit=bit))
        else:
            first_time = _FIRST_TIME_FIELDS.get(event_type)
            marks.append(EventMark(item.request.id, bit, first_time, item.event.occurred_at))
    await repository.update_summaries(session, changes)
    await repository.mark_events(session, marks)
    await enqueue_events(
        session,
        [
            RequestEvent(
                event_type=result_status(item.event),
                request_id=item.request.id,
                topic_id=item.request.topic_id,
                email=item.request.recipient_key,
                occurred_at=item.event.occurred_at,
                details=item.event.detail,
                now=item.now,
            )
            for item in applied
            if item.event.occurred_at is not None
        ],
    )
    for item in applied:
        feedback = await _feedback(session, item, soft_bounces)
        if feedback is not None:
            await suppression.record_feedback(session, feedback, rule=soft_bounces, now=item.now)


async def _feedback(session: AsyncSession, item: _Applied, rule: SoftBounceRule) -> Feedback | None:
    """What the event says of its recipient's mailbox, for the suppression list."""
    event, address = item.event, item.request.recipient_key
    if event.event_type is SesEventType.COMPLAINT:
        detail = event.complaint_feedback_type or "no feedback type"
        return Feedback(address, FeedbackKind.COMPLAINT, detail)
    if event.event_type is not SesEventType.BOUNCE:
        return None
    if event.is_permanent_bounce:
        return Feedback(address, FeedbackKind.HARD_BOUNCE, _bounce_detail(event, address))
    recent = await repository.bounced_messages(session, address, since=item.now - rule.window)
    return Feedback(
        address, FeedbackKind.SOFT_BOUNCE, _bounce_detail(event, address), recent_bounces=recent
    )


def _bounce_detail(event: SesEvent, address: str) -> str:
    """The bounce kind, and the receiving server's words for this address when SES gave them."""
    kind = event.bounce_kind or EventType.BOUNCE
    for entry in event.detail.get("bouncedRecipients", []):
        if not isinstance(entry, dict):
            continue
        bounced, diagnostic = entry.get("emailAddress"), entry.get("diagnosticCode")
        if isinstance(bounced, str) and recipient_key(bounced) == address and diagnostic:
            return f"{kind}: {diagnostic}"
    return kind


def summary_change(event: SesEvent, request_id: int) -> SummaryChange | None:
    """What the event changes in its request's summary; None for events that say nothing of
    what became of the email.

    Each time keeps the earliest of its kind, the outcome the strongest: the summary comes out
    the same whatever order the events arrive in.
    """
    at, outcome = event.occurred_at, outcome_of(event)
    if at is None or outcome is None:
        return None
    time_field = _SUMMARY_TIME_FIELDS[event.event_type]
    match event.event_type:
        case SesEventType.BOUNCE:
            return SummaryChange(
                request_id, time_field, at, outcome, "bounce_type", event.bounce_kind
            )
        case SesEventType.COMPLAINT:
            return SummaryChange(
                request_id, time_field, at, outcome, "complaint_type", event.complaint_feedback_type
            )
        case _:
            return SummaryChange(request_id, time_field, at, outcome)


def outcome_of(event: SesEvent) -> Outcome | None:
    """What the event says became of the email; None for events that say nothing of it (Send,
    opens, clicks, rendering failures, subscriptions)."""
    match event.event_type:
        case SesEventType.COMPLAINT:
            return Outcome.COMPLAINED
        case SesEventType.BOUNCE:
            return Outcome.BOUNCED if event.is_permanent_bounce else Outcome.SOFT_BOUNCED
        case SesEventType.REJECT:
            return Outcome.REJECTED
        case SesEventType.DELIVERY:
            return Outcome.DELIVERED
        case SesEventType.DELIVERY_DELAY:
            return Outcome.DELAYED
        case _:
            return None


async def trusted_topics(session: AsyncSession) -> frozenset[str]:
    """The SNS topics `setup-aws` recorded (SNS_TOPIC_ARNS names more)."""
    return await repository.trusted_topic_arns(session)


async def trust_topic(session: AsyncSession, arn: str, *, now: datetime) -> bool:
    """Record a topic `setup-aws` wired, so its messages count; whether it was new."""
    return await repository.record_trusted_topic(session, arn, recorded_by=SETUP_AWS, now=now)


async def list_unmatched_events(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> UnmatchedEventsOut:
    """SES events that match no request of ours: kept for review, applied to nothing (a
    complaint about an address we never mailed suppresses nobody)."""
    before = None if cursor is None else _page_key(cursor)
    # One more than asked says whether another page follows.
    rows = await repository.unmatched_results(session, before=before, limit=limit + 1)
    shown = rows[:limit]
    last = shown[-1] if len(rows) > limit else None
    next_cursor = None if last is None else encode_cursor(last.created_at.isoformat(), str(last.id))
    return UnmatchedEventsOut(
        events=[
            UnmatchedEventOut(
                id=row.id,
                type=row.status,
                recipient=row.recipient or "",
                ses_message_id=row.ses_message_id,
                occurred_at=row.occurred_at,
                received_at=row.created_at,
            )
            for row in shown
        ],
        next_cursor=next_cursor,
    )


def _page_key(cursor: str) -> tuple[datetime, int]:
    created_at, row_id = decode_cursor(cursor, parts=2)
    return cursor_time(created_at), cursor_row_id(row_id)
