from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ses_sender.stats import service
from ses_sender.stats.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    SentCount,
    Timeline,
    TopicDomains,
    TopicLinks,
    TopicPage,
    TopicStats,
)
from ses_sender.web.auth import require_api_key
from ses_sender.web.dependencies import NowDep, SessionDep

router = APIRouter(prefix="/v1", tags=["stats"], dependencies=[Depends(require_api_key)])

# `from` is a Python keyword: the parameter is read under its alias.
FromQuery = Annotated[str | None, Query(alias="from")]


@router.get("/topics", response_model=TopicPage)
async def list_topics(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> TopicPage:
    """Topics, newest first (by when they were first queued to), each with its progress and
    its rates. Pass the answer's `nextCursor` as `cursor` for the next page; it is null on the
    last."""
    return await service.list_topics(session, cursor=cursor, limit=limit)


@router.get("/stats/timeline", response_model=Timeline)
async def get_account_timeline(
    session: SessionDep,
    now: NowDep,
    start: FromQuery = None,
    to: str | None = None,
    bucket: str | None = None,
) -> Timeline:
    """The whole account's counts per bucket (`minute`, `hour` or `day`) from `from` to `to`
    (ISO 8601; at most 1,440 buckets)."""
    return await service.account_timeline(
        session, service.parse_time_range(start, to, bucket, now=now)
    )


# Declared before the topic's own route, whose id may contain slashes: a topic id that ends
# in "/timeline" or "/domains" reads as these.
@router.get("/topics/{topic_id:path}/timeline", response_model=Timeline)
async def get_topic_timeline(
    topic_id: str,
    session: SessionDep,
    now: NowDep,
    start: FromQuery = None,
    to: str | None = None,
    bucket: str | None = None,
) -> Timeline:
    """One topic's counts per bucket (`minute`, `hour` or `day`) from `from` to `to` (ISO 8601;
    at most 1,440 buckets)."""
    return await service.topic_timeline(
        session, topic_id, service.parse_time_range(start, to, bucket, now=now)
    )


@router.get("/topics/{topic_id:path}/domains", response_model=TopicDomains)
async def get_topic_domains(
    topic_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=service.MAX_DOMAINS)] = service.DEFAULT_DOMAINS,
) -> TopicDomains:
    """One topic's counts per recipient domain, the largest first."""
    return await service.topic_domains(session, topic_id, limit=limit)


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
