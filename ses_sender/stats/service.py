from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.errors import InvalidInput
from ses_sender.models import Outcome, RequestStatus, StopReason
from ses_sender.stats import repository
from ses_sender.stats.schemas import (
    OutcomeCounts,
    RequestCounts,
    ResultCounts,
    SentCount,
    TopicStats,
)

MIN_HOURS = 1
MAX_HOURS = 168


async def request_counts(session: AsyncSession, topic_id: str) -> dict[int, int]:
    """The topic's requests by status (a `RequestStatus` absent: none)."""
    return await repository.request_counts_by_status(session, topic_id)


async def topic_stats(session: AsyncSession, topic_id: str) -> TopicStats:
    by_status = await request_counts(session, topic_id)
    with_events, statuses = await repository.result_counts(session, topic_id)
    by_outcome = await repository.outcome_counts(session, topic_id)
    return TopicStats(
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


def parse_hours(raw: str | None) -> int:
    text = "24" if raw is None else raw
    # ASCII digits, and few: int() takes other digits ("²") and refuses thousands of them.
    if (
        not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_HOURS)))
        or not MIN_HOURS <= int(text) <= MAX_HOURS
    ):
        raise InvalidInput(f"hours must be between {MIN_HOURS} and {MAX_HOURS}")
    return int(text)


async def sent_count(session: AsyncSession, hours: int, *, now: datetime) -> SentCount:
    since = (now - timedelta(hours=hours)).replace(microsecond=0)
    return SentCount(
        count=await repository.sent_since(session, since),
        hours=hours,
        since=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
