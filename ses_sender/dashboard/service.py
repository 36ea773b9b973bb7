"""What each dashboard page shows, gathered from the features' own services (same process,
same transaction: never through the HTTP API)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.control import service as control
from ses_sender.dashboard import repository
from ses_sender.guardrail.service import Limits, Reputation, reputation
from ses_sender.models import RequestStatus
from ses_sender.sending import service as sending
from ses_sender.stats import service as stats
from ses_sender.stats.schemas import TopicStats
from ses_sender.suppression import service as suppression
from ses_sender.suppression.schemas import SuppressionPageOut
from ses_sender.webhooks import service as webhooks
from ses_sender.webhooks.schemas import WebhookOut
from ses_sender.webhooks.service import DeliveryFailure

TOPICS_SHOWN = 50
SUPPRESSIONS_PER_PAGE = 50
WEBHOOK_FAILURES_SHOWN = 20
MINUTE_S = 60


@dataclass(frozen=True, slots=True)
class Account:
    """The settings the overview shows beside the numbers."""

    email_rate: float
    limits: Limits


@dataclass(frozen=True, slots=True)
class Overview:
    pauses: list[str]  # "<name>: <reason>"; empty while sending
    email_rate: float
    sent_last_minute: int
    sent_last_day: int
    last_day_since: datetime
    reputation: Reputation
    limits: Limits


@dataclass(frozen=True, slots=True)
class Progress:
    topic_id: str
    total: int
    queued: int  # waiting, held or being sent
    sent: int
    failed: int
    stopped: int

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.stopped

    def as_json(self) -> dict[str, int | str]:
        return {
            "topicId": self.topic_id,
            "total": self.total,
            "queued": self.queued,
            "sent": self.sent,
            "failed": self.failed,
            "stopped": self.stopped,
            "done": self.done,
        }


@dataclass(frozen=True, slots=True)
class TopicView:
    progress: Progress
    stats: TopicStats
    paused_at: datetime | None
    # (start of the minute in epoch seconds, emails sent in it), oldest first, no gaps.
    timeline: list[tuple[int, int]]


async def overview(session: AsyncSession, account: Account, *, now: datetime) -> Overview:
    state = await sending.sending_state(session, now=now)
    last_day = now - timedelta(hours=24)
    return Overview(
        pauses=state.reasons,
        email_rate=account.email_rate,
        sent_last_minute=await stats.sent_in_last_minute(session, now=now),
        sent_last_day=(await stats.sent_count(session, 24, now=now)).count,
        last_day_since=last_day,
        reputation=await reputation(session, now=now),
        limits=account.limits,
    )


async def resume_sending(session: AsyncSession) -> list[str]:
    return await sending.resume_sending(session)


async def progress(session: AsyncSession, topic_id: str) -> Progress:
    counts = await stats.request_counts(session, topic_id)
    return _progress(topic_id, counts)


def _progress(topic_id: str, counts: dict[int, int]) -> Progress:
    return Progress(
        topic_id=topic_id,
        total=sum(counts.values()),
        queued=counts.get(RequestStatus.CREATED, 0) + counts.get(RequestStatus.PROCESSING, 0),
        sent=counts.get(RequestStatus.SENT, 0),
        failed=counts.get(RequestStatus.FAILED, 0),
        stopped=counts.get(RequestStatus.STOPPED, 0),
    )


async def topics(session: AsyncSession) -> list[Progress]:
    return [
        await progress(session, topic_id)
        for topic_id in await repository.newest_topics(session, TOPICS_SHOWN)
    ]


async def topic(session: AsyncSession, topic_id: str) -> TopicView:
    topic_id = control.check_topic_id(topic_id)
    return TopicView(
        progress=await progress(session, topic_id),
        stats=await stats.topic_stats(session, topic_id),
        paused_at=await control.topic_paused_at(session, topic_id),
        timeline=per_minute(await repository.sent_times(session, topic_id)),
    )


def per_minute(times: Sequence[datetime]) -> list[tuple[int, int]]:
    counts = Counter(int(moment.timestamp()) // MINUTE_S * MINUTE_S for moment in times)
    if not counts:
        return []
    first, last = min(counts), max(counts)
    return [(minute, counts[minute]) for minute in range(first, last + MINUTE_S, MINUTE_S)]


async def pause_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> None:
    await control.pause_topic(session, control.check_topic_id(topic_id), now=now)


async def resume_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> None:
    await control.resume_topic(session, control.check_topic_id(topic_id), now=now)


async def cancel_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> int:
    cancelled = await control.cancel_topic(session, control.check_topic_id(topic_id), now=now)
    return cancelled.cancelled + cancelled.in_flight


async def suppressions(
    session: AsyncSession, *, search: str | None, cursor: str | None
) -> SuppressionPageOut:
    return await suppression.list_suppressions(
        session,
        email=None,
        reason=None,
        cursor=cursor,
        limit=SUPPRESSIONS_PER_PAGE,
        containing=search,
    )


async def remove_suppression(session: AsyncSession, email: str) -> None:
    await suppression.remove_suppression(session, email)


async def webhook_list(session: AsyncSession) -> tuple[list[WebhookOut], list[DeliveryFailure]]:
    return (
        await webhooks.list_webhooks(session),
        await webhooks.recent_failures(session, WEBHOOK_FAILURES_SHOWN),
    )
