"""The read model: counters kept where the facts change, and the reads they answer.

Writers call one of these in the transaction that changes requests:
- `count_changes(session, changes)`, with what their own statements told them of the rows they
  changed (`RequestChange`: the columns before and after, the events attached): nothing is read
  to count (docs/decisions/0020-stats-counters-as-deltas.md);
- `counting(session, request_ids)`, around a change its writer cannot describe: the rows'
  columns are read before and after (never their events);
- `count_queued` for requests the API queues, `count_added` for rows written in any state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import DropTable

from ses_sender.cursor import cursor_time, decode_cursor, encode_cursor
from ses_sender.errors import InvalidInput
from ses_sender.models import CounterScope, Outcome, RequestChange, RequestStatus
from ses_sender.stats import build, counters, repository
from ses_sender.stats.counters import (
    DAY_S,
    HOUR_S,
    MINUTE_S,
    CounterKey,
    LinkChange,
    change_deltas,
    contribution,
    derived_totals,
    domain_of,
    link_deltas,
    spread_over_grains,
)
from ses_sender.stats.schemas import (
    CounterDifference,
    DomainCounts,
    EngagementCounts,
    LinkCounts,
    OutcomeCounts,
    RequestCounts,
    ResultCounts,
    SentCount,
    Timeline,
    TimelineBucket,
    TopicDomains,
    TopicLinks,
    TopicPage,
    TopicProgress,
    TopicRates,
    TopicStats,
    TopicSummary,
    UniqueAndTotal,
    VerifyReport,
)

MIN_HOURS = 1
MAX_HOURS = 168
# A timeline answers at most this many buckets (a day of minutes, two months of hours).
MAX_BUCKETS = 1_440
GRAINS_S: Final = {"minute": MINUTE_S, "hour": HOUR_S, "day": DAY_S}
# Buckets a timeline shows when `from` is not given.
DEFAULT_BUCKETS: Final = {"minute": 60, "hour": 24, "day": 30}
MAX_DOMAINS = 1_000
MAX_LINKS = 1_000  # links listed per topic, the most clicked first
DEFAULT_DOMAINS = 100
# Deltas one fold moves into the counters, in one transaction.
FOLD_BATCH = 20_000
_COUNTED = "stats.counting"  # session.info: the requests a `counting` block covers


# -- keeping the counters ---------------------------------------------------------------------


async def count_changes(
    session: AsyncSession, changes: Iterable[RequestChange], *, links: Iterable[LinkChange] = ()
) -> None:
    """These changes to requests, as their writers know them (`RequestChange`), and to their
    clicks of each link (`LinkChange`), in the session's transaction: what the hot paths call,
    having read nothing to count but a click's link."""
    await repository.insert_deltas(session, {**change_deltas(changes), **link_deltas(links)})


class Counted:
    """What a `counting` block is told beside the rows it reads: the events attached to its
    requests in the block (each once), and which of them a machine made."""

    def __init__(self) -> None:
        self.attached: dict[int, list[tuple[str, datetime]]] = {}
        self.by_machines: dict[int, list[tuple[str, datetime]]] = {}

    def events(
        self, request_id: int, events: Iterable[tuple[str, datetime]], *, machine: bool = False
    ) -> None:
        events = list(events)
        self.attached.setdefault(request_id, []).extend(events)
        if machine:
            self.by_machines.setdefault(request_id, []).extend(events)


@asynccontextmanager
async def counting(session: AsyncSession, request_ids: Collection[int]) -> AsyncIterator[Counted]:
    """Around a change to these requests that its writer cannot describe (a sweep, a requeue
    of failed requests, a test's own UPDATE): their rows are read (their columns only, never
    their events), locked, before, and again after, and the counters change by the
    difference, plus the events the block reports attaching (`Counted.events`); the block
    keeps what the rows hold of their events up to date itself. A block inside another for
    the same requests leaves them to the outer one."""
    counted = Counted()
    covered: set[int] = session.info.setdefault(_COUNTED, set())
    ours = set(request_ids) - covered
    if not ours:
        yield counted
        return
    before = await repository.request_states(session, ours, lock=True)
    covered |= ours
    try:
        yield counted
        await session.flush()
        after = await repository.request_states(session, ours, lock=False)
        changes = []
        for request_id in ours:
            found = after.get(request_id) or before.get(request_id)
            if found is None:
                continue
            topic, recipient, _facts = found
            old = before.get(request_id)
            new = after.get(request_id)
            changes.append(
                RequestChange(
                    topic,
                    recipient,
                    None if old is None else old[2],
                    {} if new is None else new[2],
                    tuple(counted.attached.get(request_id, ())),
                    tuple(counted.by_machines.get(request_id, ())),
                )
            )
        await count_changes(session, changes)
    finally:
        covered -= ours


async def count_added(session: AsyncSession, request_ids: Collection[int]) -> None:
    """Requests inserted in this transaction, in whatever state they were written (tests)."""
    states = await repository.request_states(session, request_ids, lock=False)
    await count_changes(
        session,
        [
            RequestChange(topic, recipient, None, facts)
            for topic, recipient, facts in states.values()
        ],
    )


async def count_alike(
    session: AsyncSession,
    topic_id: str,
    by_domain: Mapping[str, int],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    """Many requests of one topic changed alike (a topic cancelled), counted by domain: one
    change is counted per domain, and multiplied."""
    deltas: Counter[CounterKey] = Counter()
    for domain, count in by_domain.items():
        one = RequestChange(topic_id, f"@{domain}", before, after)
        for key, value in change_deltas([one]).items():
            deltas[key] += value * count
    await repository.insert_deltas(session, {key: value for key, value in deltas.items() if value})


async def count_queued(
    session: AsyncSession, topic_id: str, recipient_keys: Sequence[str], *, now: datetime
) -> None:
    """New requests, queued to `topic_id`. Every new request counts alike but for its domain,
    so one is counted per domain and multiplied: intake takes 100,000 recipients a request."""
    await repository.register_topic(session, topic_id, now=now)
    one = counters.new_row()
    deltas: Counter[CounterKey] = Counter()
    for domain, count in Counter(domain_of(key) for key in recipient_keys).items():
        for key, value in contribution(topic_id, f"@{domain}", one).items():
            deltas[key] += value * count
    await repository.insert_deltas(session, {key: value for key, value in deltas.items() if value})


async def fold(session: AsyncSession, *, limit: int = FOLD_BATCH) -> int:
    """Move up to `limit` deltas into the counters; how many were moved."""
    count, taken = await repository.take_deltas(session, limit)
    summed: dict[CounterKey, int] = {}
    for key, value in taken:
        summed[key] = summed.get(key, 0) + value
    await repository.add_to_counters(
        session, {key: value for key, value in spread_over_grains(summed).items() if value}
    )
    return count


# -- reads --------------------------------------------------------------------------------------


async def _topic_totals(session: AsyncSession, topic_id: str) -> dict[str, int]:
    found = (await repository.totals(session, CounterScope.TOPIC, [topic_id])).get(
        (topic_id, ""), {}
    )
    return derived_totals(found, CounterScope.TOPIC)


async def request_counts(session: AsyncSession, topic_id: str) -> dict[int, int]:
    """The topic's requests by status (a `RequestStatus` absent: none)."""
    found = await _topic_totals(session, topic_id)
    return {
        status: found[status.name.lower()]
        for status in RequestStatus
        if found.get(status.name.lower())
    }


async def topic_stats(session: AsyncSession, topic_id: str) -> TopicStats:
    """The seed's topic stats (zeros for an unknown topic), from the counters alone."""
    found = await _topic_totals(session, topic_id)
    statuses = {status.name.lower(): found.get(status.name.lower(), 0) for status in RequestStatus}
    sent = statuses[RequestStatus.SENT.name.lower()]
    return TopicStats(
        opens=_engagement(_kept_engagement(found, "open"), sent),
        clicks=_engagement(_kept_engagement(found, "click"), sent),
        request=RequestCounts(
            total=found.get(counters.REQUESTS, 0),
            suppressed=found.get(counters.SUPPRESSED, 0),
            **statuses,
        ),
        result=ResultCounts(
            total=found.get(counters.EVENTS, 0),
            statuses={
                metric.removeprefix(counters.EVENT_PREFIX): value
                for metric, value in sorted(found.items())
                if metric.startswith(counters.EVENT_PREFIX)
            },
            outcomes=OutcomeCounts(
                sent=found.get(counters.outcome_metric(None), 0),
                **{
                    outcome.name.lower(): found.get(counters.outcome_metric(outcome), 0)
                    for outcome in Outcome
                },
            ),
        ),
    )


async def list_topics(session: AsyncSession, *, cursor: str | None, limit: int) -> TopicPage:
    """Topics newest first (by when they were first queued to), with progress and rates."""
    before = None
    if cursor is not None:
        created_at, topic_id = decode_cursor(cursor, parts=2)
        before = (cursor_time(created_at), topic_id)
    found = await repository.topics_page(session, before=before, limit=limit + 1)
    shown = found[:limit]
    totals = await repository.totals(
        session, CounterScope.TOPIC, [topic_id for topic_id, _at in shown]
    )
    return TopicPage(
        topics=[
            _summary(
                topic_id,
                created_at,
                derived_totals(totals.get((topic_id, ""), {}), CounterScope.TOPIC),
            )
            for topic_id, created_at in shown
        ],
        next_cursor=(
            encode_cursor(shown[-1][1].isoformat(), shown[-1][0]) if len(found) > limit else None
        ),
    )


def _summary(topic_id: str, created_at: datetime, found: dict[str, int]) -> TopicSummary:
    sent = found.get(RequestStatus.SENT.name.lower(), 0)

    def rate(metric: str) -> float:
        return round(found.get(metric, 0) / sent, 4) if sent else 0.0

    progress = TopicProgress(
        queued=found.get(RequestStatus.CREATED.name.lower(), 0),
        processing=found.get(RequestStatus.PROCESSING.name.lower(), 0),
        sent=sent,
        failed=found.get(RequestStatus.FAILED.name.lower(), 0),
        stopped=found.get(RequestStatus.STOPPED.name.lower(), 0),
    )
    progress.total = found.get(counters.REQUESTS, 0)
    return TopicSummary(
        topic_id=topic_id,
        created_at=created_at,
        progress=progress,
        rates=TopicRates(
            delivered=rate(counters.DELIVERED),
            bounced=rate(counters.BOUNCED),
            complained=rate(counters.COMPLAINED),
            opened=rate(counters.HUMAN_OPENED),
            clicked=rate(counters.HUMAN_CLICKED),
        ),
    )


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A timeline's buckets: the first's and the last's start, aligned to the grain."""

    bucket: str
    grain_s: int
    first: int
    last: int


def parse_time_range(
    start: str | None, end: str | None, bucket: str | None, *, now: datetime
) -> TimeRange:
    """The query's `from`, `to` (ISO 8601; UTC when no offset is given) and `bucket`; a 400
    naming the parameter for anything out of bounds."""
    name = "hour" if bucket is None else bucket
    if name not in GRAINS_S:
        raise InvalidInput("bucket: must be one of minute, hour, day")
    grain_s = GRAINS_S[name]
    last_at = now if end is None else _parse_time("to", end)
    first_at = (
        last_at - timedelta(seconds=grain_s * (DEFAULT_BUCKETS[name] - 1))
        if start is None
        else _parse_time("from", start)
    )
    if first_at > last_at:
        raise InvalidInput("from: must not be after to")
    first = counters.bucket_of(int(first_at.timestamp()), grain_s)
    last = counters.bucket_of(int(last_at.timestamp()), grain_s)
    if (last - first) // grain_s + 1 > MAX_BUCKETS:
        raise InvalidInput(
            f"from: the range spans more than {MAX_BUCKETS} {name} buckets; "
            "narrow it or choose a larger bucket"
        )
    return TimeRange(name, grain_s, first, last)


# Longer than any ISO 8601 time; a longer value is refused before it is parsed.
_MAX_TIME_LENGTH = 40


def _parse_time(name: str, text: str) -> datetime:
    parsed = None
    if len(text) <= _MAX_TIME_LENGTH:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
    if parsed is None or not datetime(1970, 1, 2, tzinfo=UTC) <= (
        parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    ) <= datetime(9999, 1, 1, tzinfo=UTC):
        raise InvalidInput(f"{name}: not an ISO 8601 time (2026-01-31T09:00:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def topic_timeline(session: AsyncSession, topic_id: str, span: TimeRange) -> Timeline:
    """One topic's counts per bucket, every bucket of the range (zeros where nothing happened)."""
    return await _timeline(session, CounterScope.TOPIC_TIME, topic_id, span)


async def account_timeline(session: AsyncSession, span: TimeRange) -> Timeline:
    """`topic_timeline` for every topic together."""
    return await _timeline(session, CounterScope.ACCOUNT_TIME, "", span)


# A timeline bucket's counts, in the order `_bucket` takes them.
_TIMELINE_METRICS: Final = (
    counters.SENT,
    counters.DELIVERED,
    counters.BOUNCED,
    counters.COMPLAINED,
    counters.OPENED,
    counters.OPENS,
    counters.MACHINE_OPENS,
    counters.CLICKED,
    counters.CLICKS,
    counters.MACHINE_CLICKS,
    counters.UNSUBSCRIBED,
    counters.FAILED,
)
_NO_COUNTS: Final = (0,) * len(_TIMELINE_METRICS)


async def _timeline(
    session: AsyncSession, scope: CounterScope, topic_id: str, span: TimeRange
) -> Timeline:
    found = await repository.buckets(
        session,
        scope,
        topic_id,
        _TIMELINE_METRICS,
        grain_s=span.grain_s,
        first=span.first,
        last=span.last,
    )
    return Timeline(
        topic_id=topic_id if scope == CounterScope.TOPIC_TIME else None,
        bucket=span.bucket,
        from_=datetime.fromtimestamp(span.first, UTC),
        to=datetime.fromtimestamp(span.last + span.grain_s, UTC),
        buckets=[
            _bucket(start, *found.get(start, _NO_COUNTS))
            for start in range(span.first, span.last + 1, span.grain_s)
        ],
    )


def _bucket(
    start: int,
    sent: int,
    delivered: int,
    bounced: int,
    complained: int,
    opened: int,
    opens: int,
    machine_opens: int,
    clicked: int,
    clicks: int,
    machine_clicks: int,
    unsubscribed: int,
    failed: int,
) -> TimelineBucket:
    return TimelineBucket(
        start=datetime.fromtimestamp(start, UTC),
        sent=sent,
        delivered=delivered,
        bounced=bounced,
        complained=complained,
        opened=_engagement_in(opened, opens, machine_opens),
        clicked=_engagement_in(clicked, clicks, machine_clicks),
        unsubscribed=unsubscribed,
        failed=failed,
    )


def _engagement_in(unique: int, total: int, machine: int) -> UniqueAndTotal:
    return UniqueAndTotal(unique=unique, total=total, human=total - machine, machine=machine)


# A domain's counts: what `DomainCounts` shows, and what its queued count is derived from.
_DOMAIN_METRICS: Final = (
    counters.REQUESTS,
    counters.SENT,
    counters.FAILED,
    counters.STOPPED,
    counters.DELIVERED,
    counters.BOUNCED,
    counters.COMPLAINED,
    counters.OPENED,
    counters.CLICKED,
    counters.HUMAN_OPENED,
    counters.HUMAN_CLICKED,
    counters.UNSUBSCRIBED,
)


async def topic_domains(
    session: AsyncSession, topic_id: str, *, limit: int = DEFAULT_DOMAINS
) -> TopicDomains:
    """The topic's counts per recipient domain, the `limit` largest (by requests) first. A
    domain's `queued` counts the emails claimed and not yet sent too."""
    found, domains = await repository.largest(
        session, CounterScope.DOMAIN, topic_id, _DOMAIN_METRICS, by=counters.REQUESTS, limit=limit
    )
    rows = [
        DomainCounts(
            domain=domain,
            queued=counts[counters.CREATED],
            sent=counts[counters.SENT],
            failed=counts[counters.FAILED],
            stopped=counts[counters.STOPPED],
            total=counts[counters.REQUESTS],
            delivered=counts[counters.DELIVERED],
            bounced=counts[counters.BOUNCED],
            complained=counts[counters.COMPLAINED],
            opened=counts[counters.OPENED],
            clicked=counts[counters.CLICKED],
            human_opened=counts[counters.HUMAN_OPENED],
            human_clicked=counts[counters.HUMAN_CLICKED],
            unsubscribed=counts[counters.UNSUBSCRIBED],
        )
        for domain, kept in found
        for counts in [derived_totals(kept, CounterScope.DOMAIN)]
    ]
    return TopicDomains(topic_id=topic_id, domains=rows, more=max(0, domains - limit))


# A link's counts: our own clicks' (`counters.LINK_RULES`), as `LinkCounts` shows them.
_LINK_METRICS: Final = tuple(rule.metric for rule in counters.LINK_RULES)


async def topic_links(session: AsyncSession, topic_id: str) -> TopicLinks:
    """The topic's clicked links, the most clicked first (at most `MAX_LINKS`), from their
    counters: the answer's time does not grow with the topic's clicks."""
    found, _links = await repository.largest(
        session,
        CounterScope.LINK,
        topic_id,
        _LINK_METRICS,
        by=counters.TRACKED_CLICKS,
        limit=MAX_LINKS,
    )
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
            for url, kept in found
            for counts in [_kept_engagement(kept, "click")]
        ],
    )


@dataclass(frozen=True, slots=True)
class Engagement:
    """Our own opens or clicks of a topic (or of one link), people's and machines'."""

    total: int
    machine: int
    unique: int  # requests with any
    unique_human: int  # requests with one a person made
    unique_machine: int  # requests with one a machine made


def _kept_engagement(found: Mapping[str, int], kind: str) -> Engagement:
    """Our own opens (`kind` "open") or clicks, from the topic's (or a link's) counters."""
    return Engagement(
        total=found.get(f"tracked:{kind}s", 0),
        machine=found.get(f"machine:{kind}s", 0),
        unique=found.get(f"tracked:{kind}ed", 0),
        unique_human=found.get(f"human:{kind}ed", 0),
        unique_machine=found.get(f"machine:{kind}ed", 0),
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
    # ASCII digits, and few: int() takes other digits ("²") and refuses thousands of them.
    if (
        not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_HOURS)))
        or not MIN_HOURS <= int(text) <= MAX_HOURS
    ):
        raise InvalidInput(f"hours must be between {MIN_HOURS} and {MAX_HOURS}")
    return int(text)


async def sent_count(session: AsyncSession, hours: int, *, now: datetime) -> SentCount:
    """Requests sent since `hours` ago (to the second): whole hours and minutes from the
    counters, the seconds before the first whole minute from the rows."""
    since = (now - timedelta(hours=hours)).replace(microsecond=0)
    since_s = int(since.timestamp())
    first_minute = -(-since_s // MINUTE_S) * MINUTE_S
    first_hour = -(-since_s // HOUR_S) * HOUR_S
    count = await repository.sent_between(session, since, datetime.fromtimestamp(first_minute, UTC))
    minutes = await repository.buckets(
        session,
        CounterScope.ACCOUNT_TIME,
        "",
        [counters.SENT],
        grain_s=MINUTE_S,
        first=first_minute,
        last=first_hour - MINUTE_S,
    )
    hours_found = await repository.buckets(
        session,
        CounterScope.ACCOUNT_TIME,
        "",
        [counters.SENT],
        grain_s=HOUR_S,
        first=first_hour,
        last=int(now.timestamp()) // HOUR_S * HOUR_S + HOUR_S,
    )
    for found in (minutes, hours_found):
        count += sum(sent for (sent,) in found.values())
    return SentCount(count=count, hours=hours, since=since.strftime("%Y-%m-%dT%H:%M:%SZ"))


# -- verifying -----------------------------------------------------------------------------------


async def verify(session: AsyncSession, topic_id: str | None) -> VerifyReport:
    """Recount from the rows and events, in the database (build.py: the rules as SQL
    aggregates), and compare with the counters kept (folded and pending); every difference."""
    dialect = session.get_bind().dialect.name
    requests = int(await session.scalar(build.requests_query(topic_id)) or 0)
    for statement in build.recount_statements(dialect, topic_id):
        await session.execute(statement)
    rows = (await session.execute(build.differences_query(dialect, topic_id))).all()
    await session.execute(DropTable(build.recount_table))
    differences = [
        CounterDifference(
            counter=_describe((scope, topic, domain, int(bucket), metric), int(grain_s)),
            kept=int(kept),
            recounted=int(recounted),
        )
        for scope, topic, domain, grain_s, bucket, metric, kept, recounted in rows
    ]
    return VerifyReport(topic_id=topic_id, requests=requests, differences=differences)


def _describe(key: CounterKey, grain_s: int) -> str:
    scope, topic_id, domain, bucket, metric = key
    where = {
        CounterScope.TOPIC: f"topic {topic_id!r}",
        CounterScope.DOMAIN: f"topic {topic_id!r} domain {domain!r}",
        CounterScope.LINK: f"topic {topic_id!r} link {domain!r}",
        CounterScope.TOPIC_TIME: f"topic {topic_id!r}",
        CounterScope.ACCOUNT_TIME: "account",
    }[CounterScope(scope)]
    if grain_s:
        start = datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        where += f" {start} ({grain_s} s)"
    return f"{where}: {metric}"
