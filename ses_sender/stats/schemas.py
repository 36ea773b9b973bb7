from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RequestCounts(BaseModel):
    total: int = 0
    created: int = 0
    processing: int = 0
    sent: int = 0
    failed: int = 0
    stopped: int = 0
    suppressed: int = 0  # of the stopped: never sent because the address is suppressed


class OutcomeCounts(BaseModel):
    """Sent requests by the strongest thing SES said of them; they add up to `request.sent`."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    complained: int = 0
    bounced: int = 0  # permanently
    rejected: int = 0
    soft_bounced: int = Field(0, alias="softBounced")
    delivered: int = 0
    delayed: int = 0
    sent: int = 0  # nothing heard beyond the send (yet)


class ResultCounts(BaseModel):
    total: int = 0  # requests with at least one event
    statuses: dict[str, int] = {}  # event type -> requests that had it
    outcomes: OutcomeCounts = OutcomeCounts()


class TopicStats(BaseModel):
    request: RequestCounts
    result: ResultCounts


class SentCount(BaseModel):
    count: int
    hours: int
    since: str
