from __future__ import annotations

from fastapi import APIRouter, Depends

from ses_sender.stats import service
from ses_sender.stats.schemas import SentCount, TopicLinks, TopicStats
from ses_sender.web.auth import require_api_key
from ses_sender.web.dependencies import NowDep, SessionDep

router = APIRouter(prefix="/v1", tags=["stats"], dependencies=[Depends(require_api_key)])


# Before the topic's stats: a topic id may hold slashes, and that route takes any path.
@router.get("/topics/{topic_id:path}/links", response_model=TopicLinks)
async def get_topic_links(topic_id: str, session: SessionDep) -> TopicLinks:
    """Each tracked link of the topic's emails that was clicked: total and unique clicks,
    people's and machines'."""
    return await service.topic_links(session, topic_id)


@router.get("/topics/{topic_id:path}", response_model=TopicStats)
async def get_topic_stats(topic_id: str, session: SessionDep) -> TopicStats:
    """Requests by status and events by type for one topic (zeros for an unknown topic)."""
    return await service.topic_stats(session, topic_id)


@router.get("/events/counts/sent", response_model=SentCount)
async def get_sent_count(session: SessionDep, now: NowDep, hours: str | None = None) -> SentCount:
    """Emails sent in the last `hours` hours (1 to 168, default 24), by their sent time."""
    return await service.sent_count(session, service.parse_hours(hours), now=now)
