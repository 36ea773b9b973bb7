"""Control over queued email: cancel, pause, resume, reschedule; look a request up.

Every operation is idempotent: repeating it changes nothing more and answers alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.control import repository
from ses_sender.control.schemas import (
    RequestCancelledOut,
    RequestOut,
    RequestRetriedOut,
    RequestSummaryOut,
    RescheduleIn,
    TopicCancelledOut,
    TopicPauseOut,
    TopicRescheduledOut,
    TopicRetriedOut,
)
from ses_sender.delivery.emails import Hold, QueuedEmail, Verdict
from ses_sender.errors import Conflict, NotFound
from ses_sender.messages.service import checked_topic_id, parse_scheduled_time
from ses_sender.models import Request, RequestChange, RequestStatus, StopReason
from ses_sender.stats import service as stats


def check_topic_id(topic_id: str) -> str:
    """The rule topics are created with (a blank one is none). A topic without requests is
    still a topic: pausing it first holds what is posted to it later (README)."""
    return checked_topic_id(topic_id, "topicId")


async def cancel_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> TopicCancelledOut:
    cancelled = await _stop_requests(session, topic_id, RequestStatus.CREATED, now=now)
    # Claimed rows may be at SES already: stopped here, and the worker records a send that went
    # through as Sent but never queues a failed one again (delivery/repository.record_outcomes).
    in_flight = await _stop_requests(session, topic_id, RequestStatus.PROCESSING, now=now)
    counts = await stats.request_counts(session, topic_id)
    return TopicCancelledOut(
        topic_id=topic_id,
        cancelled=cancelled,
        in_flight=in_flight,
        already_sent=counts.get(RequestStatus.SENT, 0),
        already_failed=counts.get(RequestStatus.FAILED, 0),
        already_stopped=counts.get(RequestStatus.STOPPED, 0) - cancelled - in_flight,
    )


async def _stop_requests(
    session: AsyncSession, topic_id: str, status: RequestStatus, *, now: datetime
) -> int:
    """`repository.stop_requests`, counted; how many were stopped."""
    stopped = await repository.stop_requests(session, topic_id, status, now=now)
    await stats.count_alike(session, topic_id, stopped, _status(status), _CANCELLED)
    return sum(stopped.values())


_CANCELLED = {"status": int(RequestStatus.STOPPED), "stop_reason": int(StopReason.CANCELLED)}


def _status(status: int) -> dict[str, int]:
    return {"status": int(status)}


async def cancel_request(
    session: AsyncSession, request_id: int, *, now: datetime
) -> RequestCancelledOut:
    status = await repository.status_for_update(session, request_id)
    if status is None:
        raise NotFound(f"request {request_id} not found")
    if status in (RequestStatus.SENT, RequestStatus.FAILED):
        name = RequestStatus(status).name.lower()
        raise Conflict(
            f"request {request_id} is already {name}: it cannot be cancelled",
            details={"id": request_id, "status": status},
        )
    if status == RequestStatus.STOPPED:
        return RequestCancelledOut(id=request_id, status=status, outcome="alreadyStopped")
    topic_id, recipient = await repository.stop_request(session, request_id, now=now)
    await stats.count_changes(
        session, [RequestChange(topic_id, recipient, _status(status), _CANCELLED)]
    )
    return RequestCancelledOut(
        id=request_id,
        status=RequestStatus.STOPPED,
        outcome="cancelledInFlight" if status == RequestStatus.PROCESSING else "cancelled",
    )


async def requeue_failed(
    session: AsyncSession, *, topic_id: str | None, request_id: int | None, now: datetime
) -> dict[str, int]:
    """Every Failed request of the topic, or the one request if it is Failed, queued again
    (attempts counted afresh); how many per topic. The one place Failed becomes Created."""
    failed = await repository.failed_ids(session, topic_id=topic_id, request_id=request_id)
    requeued: dict[str, int] = {}
    async with stats.counting(session, failed):
        for _request_id, topic in await repository.requeue_failed(session, failed, now=now):
            requeued[topic] = requeued.get(topic, 0) + 1
    return requeued


async def retry_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> TopicRetriedOut:
    if not await repository.topic_exists(session, topic_id):
        raise NotFound(f"topic {topic_id!r} not found")
    requeued = await requeue_failed(session, topic_id=topic_id, request_id=None, now=now)
    return TopicRetriedOut(topic_id=topic_id, requeued=requeued.get(topic_id, 0))


async def retry_request(
    session: AsyncSession, request_id: int, *, now: datetime
) -> RequestRetriedOut:
    requeued = await requeue_failed(session, topic_id=None, request_id=request_id, now=now)
    status = await repository.status_for_update(session, request_id)
    if status is None:
        raise NotFound(f"request {request_id} not found")
    return RequestRetriedOut(id=request_id, status=status, requeued=sum(requeued.values()))


async def pause_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> TopicPauseOut:
    paused_at = await repository.pause(session, topic_id, now=now)
    await repository.hold_queued(session, topic_id, now=now)
    return await _pause_state(session, topic_id, paused_at)


async def resume_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> TopicPauseOut:
    await repository.unpause(session, topic_id)
    await repository.release_held(session, topic_id, now=now)
    return await _pause_state(session, topic_id, None)


async def topic_paused_at(session: AsyncSession, topic_id: str) -> datetime | None:
    """When the topic was paused; None while it is not."""
    return await repository.paused_at(session, topic_id)


async def _pause_state(
    session: AsyncSession, topic_id: str, paused_at: datetime | None
) -> TopicPauseOut:
    counts = await stats.request_counts(session, topic_id)
    return TopicPauseOut(
        topic_id=topic_id,
        paused=paused_at is not None,
        paused_at=paused_at,
        queued=counts.get(RequestStatus.CREATED, 0),
    )


async def reschedule_topic(
    session: AsyncSession, topic_id: str, reschedule: RescheduleIn, *, now: datetime
) -> TopicRescheduledOut:
    at = parse_scheduled_time(reschedule.scheduled_at, "scheduledAt", now)
    return TopicRescheduledOut(
        topic_id=topic_id,
        scheduled_at=at,
        rescheduled=await repository.reschedule(session, topic_id, at, now=now),
        paused=await repository.paused_at(session, topic_id) is not None,
    )


class TopicHolds:
    """Keeps a paused topic's mail unsent (the delivery engine's `ClaimGate` port).

    Pausing holds the topic's queued rows out of the claim's range; what becomes due in the
    topic afterwards (new requests, retries, expired leases) is held here, when it is claimed.
    """

    async def screen(
        self, session: AsyncSession, claimed: Sequence[QueuedEmail], *, now: datetime
    ) -> dict[int, Verdict]:
        paused = await repository.paused_among(session, {queued.topic_id for queued in claimed})
        return {queued.request_id: Hold() for queued in claimed if queued.topic_id in paused}


async def request_details(session: AsyncSession, request_id: int) -> RequestOut:
    row = await repository.get_request(session, request_id)
    if row is None:
        raise NotFound(f"request {request_id} not found")
    return _request_out(row, paused=await repository.paused_at(session, row.topic_id) is not None)


def _request_out(row: Request, *, paused: bool) -> RequestOut:
    return RequestOut(
        id=row.id,
        topic_id=row.topic_id,
        content_id=row.content_id,
        to=row.to,
        status=row.status,
        status_name=RequestStatus(row.status).name.lower(),
        topic_paused=paused,
        attempts=row.attempts,
        error=row.error,
        scheduled_at=row.scheduled_at,
        message_id=row.message_id,
        sent_at=row.sent_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        summary=RequestSummaryOut(
            delivered_at=row.delivered_at,
            bounced_at=row.bounced_at,
            bounce_type=row.bounce_type,
            complained_at=row.complained_at,
            complaint_type=row.complaint_type,
            rejected_at=row.rejected_at,
            delayed_at=row.delayed_at,
            first_opened_at=row.first_opened_at,
            open_count=row.open_count,
            first_clicked_at=row.first_clicked_at,
            click_count=row.click_count,
            unsubscribed_at=row.unsubscribed_at,
        ),
    )
