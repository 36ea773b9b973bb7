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


class EngagementCounts(BaseModel):
    """Our own opens or clicks, split between people and machines (privacy proxies' prefetches,
    link scanners): `rate` counts people only."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    total: int = 0
    human: int = 0
    machine: int = 0
    unique: int = 0  # emails with any
    unique_human: int = Field(0, alias="uniqueHuman")  # emails a person opened (clicked)
    unique_machine: int = Field(0, alias="uniqueMachine")
    rate: float = 0.0  # uniqueHuman / request.sent: the headline open (click) rate


class TopicStats(BaseModel):
    request: RequestCounts
    result: ResultCounts  # `statuses` counts every event, a machine's too, as it always did
    opens: EngagementCounts = EngagementCounts()
    clicks: EngagementCounts = EngagementCounts()


class LinkCounts(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    url: str
    total: int
    unique: int
    human: int
    machine: int
    unique_human: int = Field(alias="uniqueHuman")
    unique_machine: int = Field(alias="uniqueMachine")


class TopicLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    topic_id: str = Field(alias="topicId")
    links: list[LinkCounts]  # the most clicked first, at most MAX_LINKS


class SentCount(BaseModel):
    count: int
    hours: int
    since: str
