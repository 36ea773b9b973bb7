"""What each request counts for: the one definition the live counters, the migration that builds
them and `stats verify` share.

Every counter is the sum, over requests, of what `contribution` gives for the request's row and
its events. A change to requests therefore changes the counters by `contribution(after) -
contribution(before)`, whatever the change was (a send, a late or duplicated event, a cancel):
the counters stay equal to a recount by construction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ses_sender.models import CounterScope, EventType, Outcome, RequestStatus, StopReason

MINUTE_S = 60
HOUR_S = 3_600
DAY_S = 86_400
GRAINS_S = (MINUTE_S, HOUR_S, DAY_S)

# A counter: (scope, topic id, domain, bucket start in epoch seconds, metric). Topic totals have
# domain "" and bucket 0; the account's buckets have topic "".
CounterKey = tuple[int, str, str, int, str]

# Metrics of totals (TOPIC and DOMAIN scopes).
EVENTS = "events"  # requests with any event
EVENT_PREFIX = "event:"  # + an EventType: requests with an event of that type
OUTCOME_PREFIX = "outcome:"  # + an OutcomeCounts field: sent requests by outcome
SUPPRESSED = "suppressed"  # stopped because the address is suppressed
# Metrics of both totals and time buckets.
SENT = "sent"
FAILED = "failed"
DELIVERED = "delivered"
BOUNCED = "bounced"
COMPLAINED = "complained"
OPENED = "opened"  # requests opened (the first open's time, in buckets)
OPENS = "opens"  # every open
CLICKED = "clicked"
CLICKS = "clicks"
UNSUBSCRIBED = "unsubscribed"

OPEN_TYPES = frozenset({EventType.OPEN.value, EventType.SES_OPEN.value})
CLICK_TYPES = frozenset({EventType.CLICK.value, EventType.SES_CLICK.value})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the counters read of one request: its row and its events (type, time)."""

    topic_id: str
    recipient_key: str
    status: int
    stop_reason: int | None
    outcome: int | None
    sent_at: datetime | None
    updated_at: datetime  # when a Failed request failed
    delivered_at: datetime | None
    bounced_at: datetime | None
    complained_at: datetime | None
    unsubscribed_at: datetime | None
    events: tuple[tuple[str, datetime], ...] = field(default=())


def facts_of(row: Sequence[Any], events: Sequence[tuple[str, datetime]]) -> RequestFacts:
    """The facts of a row of (id, then `RequestFacts`' fields but the events, in order)."""
    (
        _id,
        topic_id,
        recipient_key,
        status,
        stop_reason,
        outcome,
        sent_at,
        updated_at,
        delivered_at,
        bounced_at,
        complained_at,
        unsubscribed_at,
    ) = row
    return RequestFacts(
        topic_id,
        recipient_key,
        status,
        stop_reason,
        outcome,
        sent_at,
        updated_at,
        delivered_at,
        bounced_at,
        complained_at,
        unsubscribed_at,
        tuple(events),
    )


def domain_of(recipient_key: str) -> str:
    return recipient_key.rpartition("@")[2]


def minute_of(at: datetime) -> int:
    return int(at.timestamp()) // MINUTE_S * MINUTE_S


def bucket_of(start_s: int, grain_s: int) -> int:
    return start_s // grain_s * grain_s


def outcome_metric(outcome: int | None) -> str:
    """The `OutcomeCounts` field a sent request counts in."""
    name = "sent" if outcome is None else Outcome(outcome).name.lower()
    return OUTCOME_PREFIX + name


def contribution(facts: RequestFacts) -> Counter[CounterKey]:
    totals: list[str] = [RequestStatus(facts.status).name.lower()]
    timed: list[tuple[str, datetime]] = []
    if facts.status == RequestStatus.STOPPED and facts.stop_reason == StopReason.SUPPRESSED:
        totals.append(SUPPRESSED)
    if facts.status == RequestStatus.SENT:
        totals.append(outcome_metric(facts.outcome))
        if facts.sent_at is not None:
            timed.append((SENT, facts.sent_at))
    if facts.status == RequestStatus.FAILED:
        timed.append((FAILED, facts.updated_at))
    for metric, at in (
        (DELIVERED, facts.delivered_at),
        (BOUNCED, facts.bounced_at),
        (COMPLAINED, facts.complained_at),
        (UNSUBSCRIBED, facts.unsubscribed_at),
    ):
        if at is not None:
            totals.append(metric)
            timed.append((metric, at))
    types = {event_type for event_type, _at in facts.events}
    if types:
        totals.append(EVENTS)
        totals.extend(EVENT_PREFIX + event_type for event_type in types)
    for unique, each, kinds in ((OPENED, OPENS, OPEN_TYPES), (CLICKED, CLICKS, CLICK_TYPES)):
        times = [at for event_type, at in facts.events if event_type in kinds]
        if times:
            totals.append(unique)
            timed.append((unique, min(times)))
            totals.extend(each for _ in times)
            timed.extend((each, at) for at in times)
    topic, domain = facts.topic_id, domain_of(facts.recipient_key)
    counts: Counter[CounterKey] = Counter()
    for metric in totals:
        counts[CounterScope.TOPIC, topic, "", 0, metric] += 1
        counts[CounterScope.DOMAIN, topic, domain, 0, metric] += 1
    for metric, at in timed:
        minute = minute_of(at)
        counts[CounterScope.TOPIC_TIME, topic, "", minute, metric] += 1
        counts[CounterScope.ACCOUNT_TIME, "", "", minute, metric] += 1
    return counts


def changes(before: Iterable[RequestFacts], after: Iterable[RequestFacts]) -> dict[CounterKey, int]:
    """The counters' change from requests as they were to the same requests as they are."""
    delta: Counter[CounterKey] = Counter()
    for facts in after:
        delta.update(contribution(facts))
    for facts in before:
        delta.subtract(contribution(facts))
    return {key: value for key, value in delta.items() if value}


def spread_over_grains(minutes: dict[CounterKey, int]) -> dict[tuple[CounterKey, int], int]:
    """Counts by minute as the counters keep them: totals once (grain 0), time buckets in the
    minute, the hour and the day; by (key, grain)."""
    spread: Counter[tuple[CounterKey, int]] = Counter()
    for key, value in minutes.items():
        scope, topic, domain, bucket, metric = key
        if scope in (CounterScope.TOPIC, CounterScope.DOMAIN):
            spread[key, 0] += value
            continue
        for grain_s in GRAINS_S:
            spread[(scope, topic, domain, bucket_of(bucket, grain_s), metric), grain_s] += value
    return dict(spread)
