from __future__ import annotations

from pydantic import BaseModel


class RequestCounts(BaseModel):
    total: int = 0
    created: int = 0
    processing: int = 0
    sent: int = 0
    failed: int = 0
    stopped: int = 0


class ResultCounts(BaseModel):
    total: int = 0  # requests with at least one event
    statuses: dict[str, int] = {}  # event type -> requests that had it


class TopicStats(BaseModel):
    request: RequestCounts
    result: ResultCounts


class SentCount(BaseModel):
    count: int
    hours: int
    since: str
