"""SQL of the read model: request facts for the counters, deltas, the fold, and the reads.

Every read adds the deltas not folded yet to the folded counters, in one statement, so it sees
one snapshot: a fold that commits meanwhile moves counts from one side to the other, never
loses or doubles them.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Subquery,
    Table,
    bindparam,
    func,
    literal,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from ses_sender.db.dialect import (
    by_code_point,
    insert_for,
    insert_for_dialect,
    insert_rows_in_one_trip,
    json_object_entries,
    locks_rows,
)
from ses_sender.models import (
    CounterScope,
    Request,
    RequestStatus,
    StatCounter,
    StatDelta,
    StatTopic,
)
from ses_sender.stats.counters import (
    FACT_COLUMNS,
    MINUTE_S,
    PACKED_SCOPES,
    PROCESSING,
    CounterKey,
)

_counters = cast(Table, StatCounter.__table__)
_deltas = cast(Table, StatDelta.__table__)
_topics = cast(Table, StatTopic.__table__)
# SQLite allows 32,766 bound parameters a statement; PostgreSQL 32,767.
_IDS_PER_QUERY = 5_000

_FACT_COLUMNS = tuple(Request.__table__.c[name] for name in FACT_COLUMNS)


# -- the facts the counters count -------------------------------------------------------------


RequestState = tuple[str, str, dict[str, Any]]  # (topic, recipient key, facts)


async def request_states(
    session: AsyncSession, request_ids: Collection[int], *, lock: bool
) -> dict[int, RequestState]:
    """What the counters read of those of these rows that exist (their columns only: no
    event is read); `lock` holds them until the transaction ends (PostgreSQL; an SQLite
    transaction holds the whole database), in id order, so that two transactions counting
    overlapping requests wait for each other instead of deadlocking."""
    ordered = sorted(request_ids)
    found: dict[int, RequestState] = {}
    statement = _STATES_LOCKED if lock and locks_rows(session) else _STATES
    for start in range(0, len(ordered), _IDS_PER_QUERY):
        rows = await session.execute(statement, {"b_ids": ordered[start : start + _IDS_PER_QUERY]})
        for row in rows:
            found[row[0]] = (row[1], row[2], dict(zip(FACT_COLUMNS, row[3:], strict=True)))
    return found


_STATES = (
    select(Request.id, Request.topic_id, Request.recipient_key, *_FACT_COLUMNS)
    .where(Request.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(Request.id)
)
_STATES_LOCKED = _STATES.with_for_update()


# -- writing: deltas and their fold -----------------------------------------------------------


async def insert_deltas(session: AsyncSession, deltas: Mapping[CounterKey, int]) -> None:
    """One statement, whatever the number of deltas: on PostgreSQL the rows go as arrays
    (`unnest`), one round trip and one plan; on SQLite as one multi-row INSERT, one call to the
    driver's thread. A metric's changes to a topic's domains go as one row
    (`StatDelta.domains`)."""
    if not deltas:
        return
    rows = _delta_rows(deltas)
    if session.get_bind().dialect.name == "postgresql":
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        for row in rows:
            for column, item in zip(columns, row, strict=True):
                column.append(item)
        await session.execute(
            _INSERT_DELTAS_ARRAYS, dict(zip(_DELTA_COLUMNS, columns, strict=True))
        )
        return
    await insert_rows_in_one_trip(await session.connection(), _deltas, _DELTA_COLUMNS, rows)


def _delta_rows(deltas: Mapping[CounterKey, int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    by_domain: dict[tuple[int, str, str], dict[str, int]] = {}
    for (scope, topic, domain, bucket, metric), value in deltas.items():
        if scope in PACKED_SCOPES:
            by_domain.setdefault((int(scope), topic, metric), {})[domain] = value
        else:
            rows.append((int(scope), topic, domain, bucket, metric, value, None))
    for (scope, topic, metric), values in by_domain.items():
        packed = orjson.dumps(values).decode()
        rows.append((scope, topic, "", 0, metric, sum(values.values()), packed))
    return rows


def _unpacked(
    scope: int, topic: str, domain: str, bucket: int, metric: str, value: int, domains: str | None
) -> list[tuple[CounterKey, int]]:
    if domains is None:
        return [((scope, topic, domain, bucket, metric), value)]
    return [
        ((scope, topic, name, bucket, metric), int(count))
        for name, count in orjson.loads(domains).items()
    ]


_DELTA_COLUMNS = ("scope", "topic_id", "domain", "bucket", "metric", "value", "domains")
_DELTA_ARRAYS = (
    func.unnest(
        *(bindparam(name, type_=postgresql.ARRAY(_deltas.c[name].type)) for name in _DELTA_COLUMNS)
    )
    .table_valued(*_DELTA_COLUMNS)
    .render_derived(name="d")
)
_INSERT_DELTAS_ARRAYS = _deltas.insert().from_select(
    _DELTA_COLUMNS, select(*(_DELTA_ARRAYS.c[name] for name in _DELTA_COLUMNS))
)


async def take_deltas(
    session: AsyncSession, limit: int
) -> tuple[int, list[tuple[CounterKey, int]]]:
    """Delete up to `limit` of the oldest delta rows; how many, and what they held (a packed
    row of domains unpacked); on PostgreSQL, deltas another fold has taken are skipped rather
    than waited for."""
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
            _deltas.c.domains,
        )
    )
    rows = taken.all()
    return len(rows), [delta for row in rows for delta in _unpacked(*row)]


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
    """The totals of these topics (scope TOPIC or DOMAIN), by (topic, domain), then metric; a
    topic's with its requests in flight (`PROCESSING`)."""
    if not topic_ids:
        return {}
    both = _totals_source(session, scope, list(topic_ids))
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


async def largest(
    session: AsyncSession,
    scope: CounterScope,
    topic_id: str,
    metrics: Sequence[str],
    *,
    by: str,
    limit: int,
) -> tuple[list[tuple[str, dict[str, int]]], int]:
    """The topic's `limit` domains (scope DOMAIN) or links (LINK) largest by the metric `by`
    (then by name, as Python orders strings), each with these metrics, and how many it has
    (with any count not 0).

    Summed, ordered and cut in the database: the answer is `limit` rows whatever the number of
    domains (links) and metrics kept for them."""
    dialect = session.get_bind().dialect.name
    both = _totals_source(session, scope, [topic_id])
    per_metric = (
        select(both.c.domain, both.c.metric, func.sum(both.c.value).label("value"))
        .group_by(both.c.domain, both.c.metric)
        .having(func.sum(both.c.value) != 0)
        .subquery()
    )
    columns = _metric_columns(per_metric, [by, *metrics])
    rows = (
        await session.execute(
            select(per_metric.c.domain, func.count().over(), *columns[1:])
            .group_by(per_metric.c.domain)
            .order_by(columns[0].desc(), by_code_point(dialect, per_metric.c.domain))
            .limit(limit)
        )
    ).all()
    domains = [(row[0], dict(zip(metrics, map(int, row[2:]), strict=True))) for row in rows]
    return domains, int(rows[0][1]) if rows else 0


def _metric_columns(source: Subquery, metrics: Sequence[str]) -> list[ColumnElement[Any]]:
    """Each metric's sum over the group (0 for none), a column each: one row a group, not one
    a group and metric."""
    return [
        func.coalesce(func.sum(source.c.value).filter(source.c.metric == metric), 0)
        for metric in metrics
    ]


def _totals_source(session: AsyncSession, scope: CounterScope, topics: list[str]) -> Subquery:
    """(topic_id, domain, metric, value) rows whose sums are the totals: the folded counters,
    the pending deltas (a packed row of domains or links unpacked) and, for topics, the
    requests in flight."""
    folded = select(
        _counters.c.topic_id, _counters.c.domain, _counters.c.metric, _counters.c.value
    ).where(
        _counters.c.scope == scope,
        _counters.c.topic_id.in_(topics),
        _counters.c.grain_s == 0,
        _counters.c.bucket == 0,
    )
    if scope in PACKED_SCOPES:
        entries = json_object_entries(session.get_bind().dialect.name, _deltas.c.domains)
        pending = (
            select(
                _deltas.c.topic_id,
                entries.c.key,
                _deltas.c.metric,
                entries.c.value.cast(BigInteger),
            )
            .select_from(_deltas)
            .join(entries, true())
            .where(_deltas.c.scope == scope, _deltas.c.topic_id.in_(topics))
        )
    else:
        pending = select(
            _deltas.c.topic_id, _deltas.c.domain, _deltas.c.metric, _deltas.c.value
        ).where(_deltas.c.scope == scope, _deltas.c.topic_id.in_(topics))
    parts = [folded, pending]
    if scope == CounterScope.TOPIC:
        # Requests in flight, from their rows (ix_email_requests_topic_status): as many as the
        # workers hold, whatever the topic's size. In the same statement: one snapshot.
        parts.append(
            select(
                Request.topic_id,
                literal(""),
                literal(PROCESSING),
                func.count(),
            )
            .where(Request.topic_id.in_(topics), Request.status == RequestStatus.PROCESSING)
            .group_by(Request.topic_id)
        )
    return union_all(*parts).subquery()


async def buckets(
    session: AsyncSession,
    scope: CounterScope,
    topic_id: str,
    metrics: Sequence[str],
    *,
    grain_s: int,
    first: int,
    last: int,
) -> dict[int, tuple[int, ...]]:
    """Time-bucket counts (scope TOPIC_TIME or ACCOUNT_TIME) of buckets starting from `first` to
    `last` (epoch seconds, both aligned to the grain): by bucket, these metrics' counts in their
    order (a bucket with none of them absent)."""
    folded = select(_counters.c.bucket, _counters.c.metric, _counters.c.value).where(
        _counters.c.scope == scope,
        _counters.c.topic_id == topic_id,
        _counters.c.domain == "",
        _counters.c.grain_s == grain_s,
        _counters.c.bucket.between(first, last),
        _counters.c.metric.in_(metrics),
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
        _deltas.c.metric.in_(metrics),
    )
    both = union_all(folded, pending).subquery()
    rows = await session.execute(
        select(both.c.bucket, *_metric_columns(both, metrics)).group_by(both.c.bucket)
    )
    return {
        int(bucket): counts
        for bucket, *values in rows
        for counts in [tuple(map(int, values))]
        if any(counts)
    }


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
        # As one row value: both databases seek the index to it, where the same condition
        # spelt with OR made PostgreSQL read the index from its start.
        query = query.where(
            tuple_(StatTopic.created_at, StatTopic.topic_id) < tuple_(created_at, topic_id)
        )
    return [(topic_id, created_at) for topic_id, created_at in await session.execute(query)]


async def sent_between(session: AsyncSession, since: datetime, until: datetime) -> int:
    """Requests sent from `since` to before `until`, counted row by row (ix on sent_at): for the
    part of a range no bucket covers."""
    count = await session.scalar(
        select(func.count()).where(Request.sent_at >= since, Request.sent_at < until)
    )
    return count or 0
