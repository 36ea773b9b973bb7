"""SQL of the read model: request facts for the counters, deltas, the fold, and the reads.

Every read adds the deltas not folded yet to the folded counters, in one statement, so it sees
one snapshot: a fold that commits meanwhile moves counts from one side to the other, never
loses or doubles them.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    case,
    distinct,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import insert_for, insert_for_dialect, locks_rows
from ses_sender.models import (
    CounterScope,
    EventType,
    Request,
    Result,
    ResultSource,
    StatCounter,
    StatDelta,
    StatTopic,
)
from ses_sender.stats.counters import MINUTE_S, CounterKey, RequestFacts, facts_of

_counters = cast(Table, StatCounter.__table__)
_deltas = cast(Table, StatDelta.__table__)
_topics = cast(Table, StatTopic.__table__)
# SQLite allows 32,766 bound parameters a statement; PostgreSQL 32,767.
_IDS_PER_QUERY = 5_000

_FACT_COLUMNS = (
    Request.id,
    Request.topic_id,
    Request.recipient_key,
    Request.status,
    Request.stop_reason,
    Request.outcome,
    Request.sent_at,
    Request.updated_at,
    Request.delivered_at,
    Request.bounced_at,
    Request.complained_at,
    Request.unsubscribed_at,
)


@dataclass(frozen=True, slots=True)
class Engagement:
    """Our own opens or clicks of a topic (or of one link), people's and machines'."""

    total: int
    machine: int
    unique: int  # requests with any
    unique_human: int  # requests with one a person made
    unique_machine: int  # requests with one a machine made


def _tracked_in_topic(topic_id: str, kind: EventType) -> Select[Any]:
    machine = func.coalesce(Result.machine, false())
    return (
        select(
            func.count(),
            func.coalesce(func.sum(case((machine, 1), else_=0)), 0),
            func.count(distinct(Result.request_id)),
            func.count(distinct(case((~machine, Result.request_id)))),
            func.count(distinct(case((machine, Result.request_id)))),
        )
        .select_from(Result)
        .join(Request, Request.id == Result.request_id)
        .where(
            Request.topic_id == topic_id,
            Result.status == kind,
            Result.source == ResultSource.TRACKING,
        )
    )


async def engagement(session: AsyncSession, topic_id: str, kind: EventType) -> Engagement:
    row = (await session.execute(_tracked_in_topic(topic_id, kind))).one()
    return Engagement(*(int(value) for value in row))


async def link_engagement(
    session: AsyncSession, topic_id: str, *, limit: int
) -> list[tuple[str, Engagement]]:
    """Clicks by link URL, the most clicked first (the honeypot, which has none, left out)."""
    rows = await session.execute(
        _tracked_in_topic(topic_id, EventType.CLICK)
        .add_columns(Result.url)
        .where(Result.url.is_not(None))
        .group_by(Result.url)
        .order_by(func.count().desc(), Result.url)
        .limit(limit)
    )
    return [(row[-1], Engagement(*(int(value) for value in row[:-1]))) for row in rows]


# -- the facts the counters count -------------------------------------------------------------


async def request_facts(
    session: AsyncSession, request_ids: Collection[int], *, lock: bool
) -> list[RequestFacts]:
    """The facts of those of these requests that exist; `lock` holds their rows until the
    transaction ends (PostgreSQL; SQLite transactions are serial), in id order, so that two
    transactions counting overlapping requests wait for each other instead of deadlocking.

    The lock is taken by a statement of its own, before the facts are read: under READ
    COMMITTED a statement that waited for a lock re-reads the locked row but not the events
    joined to it, and would miss an event the other transaction committed (and count it again).
    One statement a chunk reads rows and events joined: this runs twice in every counted change
    (a worker's batch of sends, a batch of SNS notifications), where each round trip shows."""
    ordered = sorted(request_ids)
    found: list[RequestFacts] = []
    for start in range(0, len(ordered), _IDS_PER_QUERY):
        ids = {"b_ids": ordered[start : start + _IDS_PER_QUERY]}
        if lock and locks_rows(session):
            await session.execute(_LOCK_REQUESTS, ids)
        found.extend(_group_facts(await session.execute(_FACTS_WITH_EVENTS, ids)))
    return found


_LOCK_REQUESTS = (
    select(Request.id)
    .where(Request.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(Request.id)
    .with_for_update()
)
_FACTS_WITH_EVENTS = (
    select(*_FACT_COLUMNS, Result.status, Result.occurred_at)
    .outerjoin(Result, Result.request_id == Request.id)
    .where(Request.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(Request.id)
)


def _group_facts(rows: Iterable[Any]) -> list[RequestFacts]:
    """Facts from rows of (request columns, event type, event time), a request's rows
    together; a request without events has one row with no event."""
    found: list[RequestFacts] = []
    current: Any = None
    events: list[tuple[str, datetime]] = []
    for row in rows:
        if current is None or row[0] != current[0]:
            if current is not None:
                found.append(facts_of(current[: len(_FACT_COLUMNS)], events))
            current, events = row, []
        if row[-2] is not None:
            events.append((row[-2], row[-1]))
    if current is not None:
        found.append(facts_of(current[: len(_FACT_COLUMNS)], events))
    return found


async def _events_of(
    session: AsyncSession, request_ids: Sequence[int]
) -> dict[int, tuple[tuple[str, datetime], ...]]:
    rows = await session.execute(
        select(Result.request_id, Result.status, Result.occurred_at).where(
            Result.request_id.in_(request_ids)
        )
    )
    events: defaultdict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for request_id, status, occurred_at in rows:
        if request_id is not None:
            events[request_id].append((status, occurred_at))
    return {request_id: tuple(found) for request_id, found in events.items()}


async def all_request_facts(
    session: AsyncSession, topic_id: str | None, *, chunk: int = 5_000
) -> AsyncIterator[list[RequestFacts]]:
    """Every request's facts (of one topic, or all), a chunk at a time, in id order."""
    after = 0
    while True:
        query = select(*_FACT_COLUMNS).where(Request.id > after).order_by(Request.id).limit(chunk)
        if topic_id is not None:
            query = query.where(Request.topic_id == topic_id)
        rows = (await session.execute(query)).all()
        if not rows:
            return
        events = await _events_of(session, [row[0] for row in rows])
        yield [facts_of(row, events.get(row[0], ())) for row in rows]
        after = rows[-1][0]


# -- writing: deltas and their fold -----------------------------------------------------------


async def insert_deltas(session: AsyncSession, deltas: Mapping[CounterKey, int]) -> None:
    if not deltas:
        return
    await session.execute(
        _deltas.insert(),
        [
            {
                "scope": scope,
                "topic_id": topic_id,
                "domain": domain,
                "bucket": bucket,
                "metric": metric,
                "value": value,
            }
            for (scope, topic_id, domain, bucket, metric), value in deltas.items()
        ],
    )


async def take_deltas(session: AsyncSession, limit: int) -> list[tuple[CounterKey, int]]:
    """Delete up to `limit` of the oldest deltas, and return them; on PostgreSQL, deltas another
    fold has taken are skipped rather than waited for."""
    oldest = select(_deltas.c.id).order_by(_deltas.c.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    taken = await session.execute(
        _deltas.delete()
        .where(_deltas.c.id.in_(oldest.scalar_subquery()))
        .returning(
            _deltas.c.scope,
            _deltas.c.topic_id,
            _deltas.c.domain,
            _deltas.c.bucket,
            _deltas.c.metric,
            _deltas.c.value,
        )
    )
    return [
        ((scope, topic, domain, bucket, metric), value)
        for scope, topic, domain, bucket, metric, value in taken
    ]


async def add_to_counters(
    session: AsyncSession, counts: Mapping[tuple[CounterKey, int], int]
) -> None:
    """Add each count to its counter, by (key, grain), in key order (no deadlock between two
    folds)."""
    if not counts:
        return
    await session.execute(
        _add_to_counter(session.get_bind().dialect.name),
        [
            {
                "scope": scope,
                "topic_id": topic_id,
                "domain": domain,
                "grain_s": grain_s,
                "bucket": bucket,
                "metric": metric,
                "value": value,
            }
            for ((scope, topic_id, domain, bucket, metric), grain_s), value in sorted(
                counts.items()
            )
        ],
    )


@functools.cache
def _add_to_counter(dialect: str) -> Any:
    statement = insert_for_dialect(dialect, _counters)
    return statement.on_conflict_do_update(
        index_elements=[
            _counters.c.scope,
            _counters.c.topic_id,
            _counters.c.domain,
            _counters.c.grain_s,
            _counters.c.bucket,
            _counters.c.metric,
        ],
        set_={"value": _counters.c.value + statement.excluded.value},
    )


async def register_topic(session: AsyncSession, topic_id: str, *, now: datetime) -> None:
    await session.execute(
        insert_for(session, StatTopic)
        .values(topic_id=topic_id, created_at=now)
        .on_conflict_do_nothing(index_elements=[StatTopic.topic_id])
    )


# -- reads -------------------------------------------------------------------------------------


async def totals(
    session: AsyncSession, scope: CounterScope, topic_ids: Collection[str]
) -> dict[tuple[str, str], dict[str, int]]:
    """The totals of these topics (scope TOPIC or DOMAIN), by (topic, domain), then metric."""
    if not topic_ids:
        return {}
    topics = list(topic_ids)
    folded = select(
        _counters.c.topic_id, _counters.c.domain, _counters.c.metric, _counters.c.value
    ).where(
        _counters.c.scope == scope,
        _counters.c.topic_id.in_(topics),
        _counters.c.grain_s == 0,
        _counters.c.bucket == 0,
    )
    pending = select(_deltas.c.topic_id, _deltas.c.domain, _deltas.c.metric, _deltas.c.value).where(
        _deltas.c.scope == scope, _deltas.c.topic_id.in_(topics)
    )
    both = union_all(folded, pending).subquery()
    rows = await session.execute(
        select(both.c.topic_id, both.c.domain, both.c.metric, func.sum(both.c.value)).group_by(
            both.c.topic_id, both.c.domain, both.c.metric
        )
    )
    found: defaultdict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for topic_id, domain, metric, value in rows:
        if value:
            found[topic_id, domain][metric] = int(value)
    return dict(found)


async def buckets(
    session: AsyncSession,
    scope: CounterScope,
    topic_id: str,
    *,
    grain_s: int,
    first: int,
    last: int,
) -> dict[int, dict[str, int]]:
    """Time-bucket counts (scope TOPIC_TIME or ACCOUNT_TIME) of buckets starting from `first` to
    `last` (epoch seconds, both aligned to the grain), by bucket, then metric."""
    folded = select(_counters.c.bucket, _counters.c.metric, _counters.c.value).where(
        _counters.c.scope == scope,
        _counters.c.topic_id == topic_id,
        _counters.c.domain == "",
        _counters.c.grain_s == grain_s,
        _counters.c.bucket.between(first, last),
    )
    # Pending deltas are by minute: each goes to the bucket its minute falls in.
    pending = select(
        (_deltas.c.bucket - _deltas.c.bucket % literal(grain_s)).label("bucket"),
        _deltas.c.metric,
        _deltas.c.value,
    ).where(
        _deltas.c.scope == scope,
        _deltas.c.topic_id == topic_id,
        _deltas.c.bucket.between(first, last + grain_s - MINUTE_S),
    )
    both = union_all(folded, pending).subquery()
    rows = await session.execute(
        select(both.c.bucket, both.c.metric, func.sum(both.c.value)).group_by(
            both.c.bucket, both.c.metric
        )
    )
    found: defaultdict[int, dict[str, int]] = defaultdict(dict)
    for bucket, metric, value in rows:
        if value:
            found[int(bucket)][metric] = int(value)
    return dict(found)


async def counters_of(
    session: AsyncSession, topic_id: str | None
) -> tuple[dict[tuple[CounterKey, int], int], dict[CounterKey, int]]:
    """Every count as kept, a topic's or all of them: (the folded ones by (key, grain), the
    pending deltas summed by key)."""
    folded = select(
        _counters.c.scope,
        _counters.c.topic_id,
        _counters.c.domain,
        _counters.c.bucket,
        _counters.c.metric,
        _counters.c.grain_s,
        _counters.c.value,
    )
    pending = select(
        _deltas.c.scope,
        _deltas.c.topic_id,
        _deltas.c.domain,
        _deltas.c.bucket,
        _deltas.c.metric,
        literal(0).label("grain_s"),
        _deltas.c.value,
    )
    if topic_id is not None:
        ours = and_(
            _counters.c.topic_id == topic_id, _counters.c.scope != CounterScope.ACCOUNT_TIME
        )
        folded = folded.where(ours)
        pending = pending.where(
            _deltas.c.topic_id == topic_id, _deltas.c.scope != CounterScope.ACCOUNT_TIME
        )
    counts: defaultdict[tuple[CounterKey, int], int] = defaultdict(int)
    for scope, topic, domain, bucket, metric, grain_s, value in await session.execute(folded):
        counts[(scope, topic, domain, bucket, metric), grain_s] += value
    pending_by_key: defaultdict[CounterKey, int] = defaultdict(int)
    for scope, topic, domain, bucket, metric, _grain, value in await session.execute(pending):
        pending_by_key[scope, topic, domain, bucket, metric] += value
    return dict(counts), dict(pending_by_key)


async def topics_page(
    session: AsyncSession, *, before: tuple[datetime, str] | None, limit: int
) -> list[tuple[str, datetime]]:
    """(topic, first queued) newest first, from before `before` (keyset paging on
    ix_stat_topics_newest)."""
    query = (
        select(StatTopic.topic_id, StatTopic.created_at)
        .order_by(StatTopic.created_at.desc(), StatTopic.topic_id.desc())
        .limit(limit)
    )
    if before is not None:
        created_at, topic_id = before
        query = query.where(
            or_(
                StatTopic.created_at < created_at,
                and_(StatTopic.created_at == created_at, StatTopic.topic_id < topic_id),
            )
        )
    return [(topic_id, created_at) for topic_id, created_at in await session.execute(query)]


async def sent_between(session: AsyncSession, since: datetime, until: datetime) -> int:
    """Requests sent from `since` to before `until`, counted row by row (ix on sent_at): for the
    part of a range no bucket covers."""
    count = await session.scalar(
        select(func.count()).where(Request.sent_at >= since, Request.sent_at < until)
    )
    return count or 0
