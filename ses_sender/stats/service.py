from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.errors import InvalidInput
from ses_sender.models import EventType, Outcome, RequestStatus, StopReason
from ses_sender.stats import repository
from ses_sender.stats.repository import Engagement
from ses_sender.stats.schemas import (
    EngagementCounts,
    LinkCounts,
    OutcomeCounts,
    RequestCounts,
    ResultCounts,
    SentCount,
    TopicLinks,
    TopicStats,
)

MIN_HOURS = 1
MAX_HOURS = 168
MAX_LINKS = 1_000  # links listed per topic, the most clicked first


async def request_counts(session: AsyncSession, topic_id: str) -> dict[int, int]:
    """The topic's requests by status (a `RequestStatus` absent: none)."""
    return await repository.request_counts_by_status(session, topic_id)


async def topic_stats(session: AsyncSession, topic_id: str) -> TopicStats:
    by_status = await request_counts(session, topic_id)
    with_events, statuses = await repository.result_counts(session, topic_id)
    by_outcome = await repository.outcome_counts(session, topic_id)
    sent = by_status.get(RequestStatus.SENT, 0)
    return TopicStats(
        opens=_engagement(await repository.engagement(session, topic_id, EventType.OPEN), sent),
        clicks=_engagement(await repository.engagement(session, topic_id, EventType.CLICK), sent),
        request=RequestCounts(
            total=sum(by_status.values()),
            suppressed=await repository.stopped_count(session, topic_id, StopReason.SUPPRESSED),
            **{status.name.lower(): by_status.get(status, 0) for status in RequestStatus},
        ),
        result=ResultCounts(
            total=with_events,
            statuses=statuses,
            outcomes=OutcomeCounts(
                sent=by_outcome.get(None, 0),
                **{outcome.name.lower(): by_outcome.get(outcome, 0) for outcome in Outcome},
            ),
        ),
    )


async def topic_links(session: AsyncSession, topic_id: str) -> TopicLinks:
    rows = await repository.link_engagement(session, topic_id, limit=MAX_LINKS)
    return TopicLinks(
        topic_id=topic_id,
        links=[
            LinkCounts(
                url=url,
                total=counts.total,
                unique=counts.unique,
                human=counts.total - counts.machine,
                machine=counts.machine,
                unique_human=counts.unique_human,
                unique_machine=counts.unique_machine,
            )
            for url, counts in rows
        ],
    )


def _engagement(counts: Engagement, sent: int) -> EngagementCounts:
    return EngagementCounts(
        total=counts.total,
        human=counts.total - counts.machine,
        machine=counts.machine,
        unique=counts.unique,
        unique_human=counts.unique_human,
        unique_machine=counts.unique_machine,
        rate=round(counts.unique_human / sent, 4) if sent else 0.0,
    )


def parse_hours(raw: str | None) -> int:
    text = "24" if raw is None else raw
    if not text.isdigit() or not MIN_HOURS <= int(text) <= MAX_HOURS:
        raise InvalidInput(f"hours must be between {MIN_HOURS} and {MAX_HOURS}")
    return int(text)


async def sent_count(session: AsyncSession, hours: int, *, now: datetime) -> SentCount:
    since = (now - timedelta(hours=hours)).replace(microsecond=0)
    return SentCount(
        count=await repository.sent_since(session, since),
        hours=hours,
        since=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
