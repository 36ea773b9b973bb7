"""What each dashboard page shows, gathered from the features' own services (same process,
same transaction: never through the HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.control import service as control
from ses_sender.guardrail.service import Limits, Reputation, reputation
from ses_sender.models import RequestStatus
from ses_sender.sending import service as sending
from ses_sender.stats import service as stats
from ses_sender.stats.schemas import Timeline, TopicDomains, TopicRates, TopicStats
from ses_sender.suppression import service as suppression
from ses_sender.suppression.schemas import SuppressionPageOut
from ses_sender.webhooks import service as webhooks
from ses_sender.webhooks.schemas import WebhookOut
from ses_sender.webhooks.service import DeliveryFailure

TOPICS_SHOWN = 50
DOMAINS_SHOWN = 20
SUPPRESSIONS_PER_PAGE = 50
WEBHOOK_FAILURES_SHOWN = 20
# The grains a timeline chart offers; each shows the counters' default span (an hour of
# minutes, a day of hours, a month of days).
CHART_BUCKETS = ("minute", "hour", "day")


@dataclass(frozen=True, slots=True)
class Account:
    """The settings the overview shows beside the numbers."""

    email_rate: float
    limits: Limits


@dataclass(frozen=True, slots=True)
class Overview:
    pauses: list[str]  # "<name>: <reason>"; empty while sending
    email_rate: float
    sent_last_hour: int
    sent_last_day: int
    reputation: Reputation
    limits: Limits
    timeline: Timeline  # the last hour, by minute


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
    timeline: Timeline
    domains: TopicDomains


async def overview(session: AsyncSession, account: Account, *, now: datetime) -> Overview:
    state = await sending.sending_state(session, now=now)
    last_hour = stats.parse_time_range(None, None, "minute", now=now)
    return Overview(
        pauses=state.reasons,
        email_rate=account.email_rate,
        sent_last_hour=(await stats.sent_count(session, 1, now=now)).count,
        sent_last_day=(await stats.sent_count(session, 24, now=now)).count,
        reputation=await reputation(session, now=now),
        limits=account.limits,
        timeline=await stats.account_timeline(session, last_hour),
    )


async def resume_sending(session: AsyncSession) -> list[str]:
    return await sending.resume_sending(session)


async def progress(session: AsyncSession, topic_id: str) -> Progress:
    counts = await stats.request_counts(session, topic_id)
    return Progress(
        topic_id=topic_id,
        total=sum(counts.values()),
        queued=counts.get(RequestStatus.CREATED, 0) + counts.get(RequestStatus.PROCESSING, 0),
        sent=counts.get(RequestStatus.SENT, 0),
        failed=counts.get(RequestStatus.FAILED, 0),
        stopped=counts.get(RequestStatus.STOPPED, 0),
    )


@dataclass(frozen=True, slots=True)
class TopicRow:
    progress: Progress
    created_at: datetime
    rates: TopicRates


@dataclass(frozen=True, slots=True)
class TopicList:
    topics: list[TopicRow]
    next_cursor: str | None


async def topics(session: AsyncSession, *, cursor: str | None) -> TopicList:
    """Topics newest first, a page at a time."""
    page = await stats.list_topics(session, cursor=cursor, limit=TOPICS_SHOWN)
    return TopicList(
        topics=[
            TopicRow(
                progress=Progress(
                    topic_id=summary.topic_id,
                    total=summary.progress.total,
                    queued=summary.progress.queued + summary.progress.processing,
                    sent=summary.progress.sent,
                    failed=summary.progress.failed,
                    stopped=summary.progress.stopped,
                ),
                created_at=summary.created_at,
                rates=summary.rates,
            )
            for summary in page.topics
        ],
        next_cursor=page.next_cursor,
    )


async def topic(session: AsyncSession, topic_id: str, *, bucket: str, now: datetime) -> TopicView:
    topic_id = control.check_topic_id(topic_id)
    span = stats.parse_time_range(None, None, bucket, now=now)
    return TopicView(
        progress=await progress(session, topic_id),
        stats=await stats.topic_stats(session, topic_id),
        paused_at=await control.topic_paused_at(session, topic_id),
        timeline=await stats.topic_timeline(session, topic_id, span),
        domains=await stats.topic_domains(session, topic_id, limit=DOMAINS_SHOWN),
    )


def chart_points(timeline: Timeline) -> list[list[int]]:
    """A timeline as the chart draws it: per bucket its start (epoch seconds), sent,
    delivered, opens by people and bounced."""
    return [
        [
            int(bucket.start.timestamp()),
            bucket.sent,
            bucket.delivered,
            bucket.opened.human,
            bucket.bounced,
        ]
        for bucket in timeline.buckets
    ]


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
