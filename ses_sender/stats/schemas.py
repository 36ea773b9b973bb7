from __future__ import annotations

from datetime import datetime

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


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class _CamelModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class TopicProgress(BaseModel):
    total: int = 0
    queued: int = 0
    processing: int = 0
    sent: int = 0
    failed: int = 0
    stopped: int = 0


class TopicRates(BaseModel):
    """Shares of the sent emails (0 when none is sent): requests with a delivery, a bounce (of
    any kind), a complaint, an open by a person (our pixel's, as `TopicStats.opens.rate`), a
    click by a person (our links', as `TopicStats.clicks.rate`)."""

    delivered: float = 0.0
    bounced: float = 0.0
    complained: float = 0.0
    opened: float = 0.0
    clicked: float = 0.0


class TopicSummary(_CamelModel):
    topic_id: str = Field(alias="topicId")
    created_at: datetime = Field(alias="createdAt")  # when it was first queued to
    progress: TopicProgress
    rates: TopicRates


class TopicPage(_CamelModel):
    topics: list[TopicSummary]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None = Field(alias="nextCursor")


class UniqueAndTotal(BaseModel):
    unique: int = 0  # requests, counted at their first (a person's or a machine's)
    total: int = 0  # every one
    # Of `total`: those judged a machine's (our pixel's and links'), and the rest (SES's own
    # open and click tracking among them: SES does not say who).
    human: int = 0
    machine: int = 0


class TimelineBucket(BaseModel):
    start: datetime
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    opened: UniqueAndTotal = UniqueAndTotal()
    clicked: UniqueAndTotal = UniqueAndTotal()
    unsubscribed: int = 0
    failed: int = 0


class Timeline(_CamelModel):
    topic_id: str | None = Field(alias="topicId")  # None: the whole account
    bucket: str
    from_: datetime = Field(alias="from")
    to: datetime
    buckets: list[TimelineBucket]


class DomainCounts(_CamelModel):
    domain: str
    total: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    stopped: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    opened: int = 0  # emails opened, by a person or a machine
    clicked: int = 0
    human_opened: int = Field(0, alias="humanOpened")  # emails a person opened
    human_clicked: int = Field(0, alias="humanClicked")
    unsubscribed: int = 0


class TopicDomains(_CamelModel):
    topic_id: str = Field(alias="topicId")
    domains: list[DomainCounts]  # largest first
    # Domains beyond the `limit` largest, not listed.
    more: int = 0


class CounterDifference(BaseModel):
    counter: str
    kept: int
    recounted: int


class VerifyReport(BaseModel):
    topic_id: str | None
    requests: int
    differences: list[CounterDifference]
