"""Every request counted at once, in the database: the counters the migration builds (and the
benchmark, the way the migration does), and the recount `stats verify` compares them with.

The rules are counters.py's, compiled to SQL aggregates: one pass over the requests for every
total (by topic and domain, into a temporary table, then one row per metric), one aggregate
per timed rule for the minutes, and the hours and days summed from the minutes; the links'
counters from one pass over our own clicks (`link_statements`), and a machine's opens and
clicks by minute from one more (`machine_event_statements`). Nothing here loops over
requests in Python: at ten million requests this runs in minutes.

The statements are plain SQLAlchemy Core, run by the caller: on the migration's synchronous
connection, or on a service session.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Executable,
    FromClause,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    case,
    distinct,
    false,
    func,
    literal,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.schema import CreateTable, DropTable

from ses_sender.db.base import UtcDateTime
from ses_sender.db.dialect import json_object_entries
from ses_sender.models import CounterScope, EventType, Request, Result, ResultSource, StatCounter
from ses_sender.models import StatDelta as _StatDelta
from ses_sender.stats.counters import (
    EVENT_BITS,
    EVENT_FACT_COLUMNS,
    EVENT_RULES,
    FACT_COLUMNS,
    GRAINS_S,
    LINK_CUT,
    LINK_RULES,
    MACHINE_EVENT_RULES,
    MAX_LINK_BYTES,
    MINUTE_S,
    PACKED_SCOPES,
    RULES,
)

_requests = cast(Table, Request.__table__)
_results = cast(Table, Result.__table__)
_counters = cast(Table, StatCounter.__table__)
_deltas = cast(Table, _StatDelta.__table__)
_TOTAL_RULES = tuple(rule for rule in RULES if rule.totals)
_TIMED_RULES = tuple(rule for rule in RULES if rule.at is not None)
_COUNTER_COLUMNS = ("scope", "topic_id", "domain", "grain_s", "bucket", "metric", "value")

_temporary = MetaData()
_totals = Table(
    "stat_build_totals",
    _temporary,
    Column("topic_id", String(255)),
    Column("domain", String(320)),
    *(Column(f"m{index}", BigInteger) for index in range(len(_TOTAL_RULES))),
    prefixes=["TEMPORARY"],
)
_links = Table(
    "stat_build_links",
    _temporary,
    Column("topic_id", String(255)),
    Column("link", Text),
    *(Column(f"m{index}", BigInteger) for index in range(len(LINK_RULES))),
    prefixes=["TEMPORARY"],
)
_minutes = Table(
    "stat_build_minutes",
    _temporary,
    Column("topic_id", String(255)),
    Column("bucket", BigInteger),
    Column("metric", String(32)),
    Column("value", BigInteger),
    prefixes=["TEMPORARY"],
)
# The recount `stats verify` compares with the counters: stat_counters' shape.
recount_table = Table(
    "stat_recount",
    _temporary,
    Column("scope", SmallInteger),
    Column("topic_id", String(255)),
    Column("domain", Text),
    Column("grain_s", Integer),
    Column("bucket", BigInteger),
    Column("metric", String(32)),
    Column("value", BigInteger),
    prefixes=["TEMPORARY"],
)


def epoch_seconds(dialect: str, at: Any) -> ColumnElement[int]:
    """A time column in whole seconds since the epoch, as `counters.minute_of` takes it."""
    if dialect == "postgresql":
        return func.floor(func.extract("epoch", at)).cast(BigInteger)
    # SQLite's date functions keep milliseconds, rounded: 08:13:59.9996 would be 08:14:00 there
    # and 08:13:59 in Python. The stored text's whole seconds (its first 19 characters) are not.
    return func.strftime("%s", func.substr(at, 1, 19)).cast(BigInteger)


def minute_sql(dialect: str, at: Any) -> ColumnElement[int]:
    seconds = epoch_seconds(dialect, at)
    return seconds - seconds % literal(MINUTE_S)


def domain_sql(dialect: str, recipient_key: Any) -> ColumnElement[str]:
    """`counters.domain_of`: what follows the last "@" (all of it without one)."""
    if dialect == "postgresql":
        return func.split_part(recipient_key, "@", -1)
    # SQLite has no search from the end: rtrim by every character but "@" leaves the key up to
    # its last "@".
    up_to_at = func.rtrim(recipient_key, func.replace(recipient_key, "@", ""))
    return func.substr(recipient_key, func.length(up_to_at) + 1)


def link_key_sql(dialect: str, url: Any) -> ColumnElement[str]:
    """`counters.link_key`: the URL, or its first `MAX_LINK_BYTES` less the cut mark's bytes of
    UTF-8 up to the last character boundary, and the mark."""
    kept_bytes = MAX_LINK_BYTES - len(LINK_CUT.encode())
    if dialect == "postgresql":
        encoded: Any = func.convert_to(url, "UTF8")
        size = func.octet_length(encoded)

        def starts_character(offset: int) -> ColumnElement[bool]:  # 0-based
            return func.get_byte(encoded, offset).op("&")(0xC0) != 0x80

        def decoded(prefix: Any) -> ColumnElement[str]:
            return func.convert_from(prefix, "UTF8")
    else:
        encoded = url.cast(LargeBinary)
        size = func.length(encoded)

        def starts_character(offset: int) -> ColumnElement[bool]:
            # A continuation byte is 0x80 to 0xBF: its hex, upper case, sorts between them.
            byte = func.hex(func.substr(encoded, offset + 1, 1))
            return ~byte.between("80", "BF")

        def decoded(prefix: Any) -> ColumnElement[str]:
            return prefix.cast(Text)  # type: ignore[no-any-return]

    # A character is at most 4 bytes: one of the last 4 offsets up to the cut starts one.
    cut = case(
        *((starts_character(offset), offset) for offset in range(kept_bytes, kept_bytes - 3, -1)),
        else_=kept_bytes - 3,
    )
    return case(
        (size <= MAX_LINK_BYTES, url),
        else_=decoded(func.substr(encoded, 1, cut)).op("||")(literal(LINK_CUT)),
    )


def events_summary() -> Select[Any]:
    """What the counters need of each request's events, from the event log: what the writers
    keep on the row (`Request.event_types`, `opened_at`, ...), recounted."""
    status, occurred_at = _results.c.status, _results.c.occurred_at
    bit = case(*((status == name, literal(value)) for name, value in EVENT_BITS.items()))
    ours = _results.c.source == ResultSource.TRACKING.value
    machine = func.coalesce(_results.c.machine, false()) == true()

    def count(kind: EventType, *, machine_only: bool) -> ColumnElement[int]:
        when = (
            and_(ours, status == kind.value, machine)
            if machine_only
            else and_(ours, status == kind.value)
        )
        return func.coalesce(func.sum(case((when, 1), else_=0)), 0)

    def earliest(types: frozenset[str]) -> ColumnElement[Any]:
        return type_coerce(func.min(case((status.in_(sorted(types)), occurred_at))), UtcDateTime())

    opens = next(types for metric, types in EVENT_RULES if metric == "opens")
    clicks = next(types for metric, types in EVENT_RULES if metric == "clicks")
    return (
        select(
            _results.c.request_id.label("request_id"),
            func.coalesce(func.sum(distinct(bit)), 0).label("event_types"),
            earliest(opens).label("opened_at"),
            earliest(clicks).label("clicked_at"),
            count(EventType.OPEN, machine_only=False).label("open_count"),
            count(EventType.OPEN, machine_only=True).label("machine_open_count"),
            count(EventType.CLICK, machine_only=False).label("click_count"),
            count(EventType.CLICK, machine_only=True).label("machine_click_count"),
        )
        .where(_results.c.request_id.is_not(None))
        .group_by(_results.c.request_id)
    )


_ZERO_WHEN_NONE = frozenset(EVENT_FACT_COLUMNS) - {"opened_at", "clicked_at"}


def request_source(*, from_events: bool, topic_id: str | None) -> FromClause:
    """The requests as the rules read them (topic, recipient and every fact column): their
    rows as kept, or (`from_events`) with what the rows keep of their events recounted from
    the event log."""
    columns: list[Any] = [_requests.c.topic_id, _requests.c.recipient_key]
    joined: FromClause = _requests
    if from_events:
        summary = events_summary().subquery("event_summary")
        joined = _requests.outerjoin(summary, summary.c.request_id == _requests.c.id)
        for name in FACT_COLUMNS:
            if name not in EVENT_FACT_COLUMNS:
                columns.append(_requests.c[name])
            elif name in _ZERO_WHEN_NONE:
                columns.append(func.coalesce(summary.c[name], 0).label(name))
            else:
                columns.append(summary.c[name].label(name))
    else:
        columns += [_requests.c[name] for name in FACT_COLUMNS]
    query = select(*columns).select_from(joined)
    if topic_id is not None:
        query = query.where(_requests.c.topic_id == topic_id)
    return query.subquery("source")


def build_statements(
    dialect: str, target: Table, *, from_events: bool, topic_id: str | None = None
) -> list[Executable]:
    """Statements that fill `target` (stat_counters, or `recount_table`) with every counter
    the requests (of one topic: its own counters, not the account's) make up, by (key,
    grain), zeros left out. `target` is expected empty of what they add."""
    source = request_source(from_events=from_events, topic_id=topic_id)
    c = source.c
    domain = domain_sql(dialect, c.recipient_key)
    statements: list[Executable] = [
        DropTable(_totals, if_exists=True),
        CreateTable(_totals),
        _totals.insert().from_select(
            [column.name for column in _totals.columns],
            select(
                c.topic_id,
                domain,
                *(func.sum(rule.total_sql(c)) for rule in _TOTAL_RULES),
            ).group_by(c.topic_id, domain),
        ),
    ]
    totals: list[Select[Any]] = []
    for index, rule in enumerate(_TOTAL_RULES):
        value = _totals.c[f"m{index}"]
        if CounterScope.DOMAIN in rule.totals:
            totals.append(
                select(
                    literal(int(CounterScope.DOMAIN)),
                    _totals.c.topic_id,
                    _totals.c.domain,
                    literal(0),
                    literal(0),
                    literal(rule.metric),
                    value,
                ).where(value != 0)
            )
        if CounterScope.TOPIC in rule.totals:
            totals.append(
                select(
                    literal(int(CounterScope.TOPIC)),
                    _totals.c.topic_id,
                    literal(""),
                    literal(0),
                    literal(0),
                    literal(rule.metric),
                    func.sum(value),
                )
                .group_by(_totals.c.topic_id)
                .having(func.sum(value) != 0)
            )
    statements += [
        target.insert().from_select(_COUNTER_COLUMNS, union_all(*totals)),
        DropTable(_totals),
    ]
    minutes: list[Select[Any]] = []
    for rule in _TIMED_RULES:
        assert rule.at is not None
        minute = minute_sql(dialect, c[rule.at])
        minutes.append(
            select(c.topic_id, minute, literal(rule.metric), func.count())
            .where(rule.when.sql(c), c[rule.at].is_not(None))
            .group_by(c.topic_id, minute)
        )
    minutes += _event_minutes(dialect, EVENT_RULES, machines_only=False, topic_id=topic_id)
    return statements + _bucket_statements(target, minutes, topic_id=topic_id)


def _event_minutes(
    dialect: str,
    rules: Sequence[tuple[str, frozenset[str]]],
    *,
    machines_only: bool,
    topic_id: str | None,
) -> list[Select[Any]]:
    """(topic, minute, metric, count) of the events each rule counts in their own minute (with
    `machines_only`, of those a machine made)."""
    event_minute = minute_sql(dialect, _results.c.occurred_at)
    machine = func.coalesce(_results.c.machine, false()) == true()
    queries = []
    for metric, types in rules:
        query = (
            select(_requests.c.topic_id, event_minute, literal(metric), func.count())
            .select_from(_results.join(_requests, _requests.c.id == _results.c.request_id))
            .where(_results.c.status.in_(sorted(types)), *([machine] if machines_only else []))
            .group_by(_requests.c.topic_id, event_minute)
        )
        if topic_id is not None:
            query = query.where(_requests.c.topic_id == topic_id)
        queries.append(query)
    return queries


def _bucket_statements(
    target: Table, minutes: Sequence[Select[Any]], *, topic_id: str | None
) -> list[Executable]:
    """Fill `target` with these (topic, minute, metric, count) summed to every grain (the
    account's too, unless for one topic), by way of `_minutes`."""
    buckets: list[Select[Any]] = []
    for grain_s in GRAINS_S:
        bucket = _minutes.c.bucket - _minutes.c.bucket % literal(grain_s)
        total = func.sum(_minutes.c.value)
        buckets.append(
            select(
                literal(int(CounterScope.TOPIC_TIME)),
                _minutes.c.topic_id,
                literal(""),
                literal(grain_s),
                bucket,
                _minutes.c.metric,
                total,
            )
            .group_by(_minutes.c.topic_id, bucket, _minutes.c.metric)
            .having(total != 0)
        )
        if topic_id is None:
            buckets.append(
                select(
                    literal(int(CounterScope.ACCOUNT_TIME)),
                    literal(""),
                    literal(""),
                    literal(grain_s),
                    bucket,
                    _minutes.c.metric,
                    total,
                )
                .group_by(bucket, _minutes.c.metric)
                .having(total != 0)
            )
    return [
        DropTable(_minutes, if_exists=True),
        CreateTable(_minutes),
        _minutes.insert().from_select(
            ["topic_id", "bucket", "metric", "value"], union_all(*minutes)
        ),
        target.insert().from_select(_COUNTER_COLUMNS, union_all(*buckets)),
        DropTable(_minutes),
    ]


def machine_event_statements(
    dialect: str, target: Table, *, topic_id: str | None = None
) -> list[Executable]:
    """Statements that fill `target` (stat_counters, or `recount_table`) with the time buckets
    of our own opens and clicks that a machine made (`MACHINE_EVENT_RULES`), from the event
    log (of one topic: its own, not the account's), zeros left out."""
    minutes = _event_minutes(dialect, MACHINE_EVENT_RULES, machines_only=True, topic_id=topic_id)
    return _bucket_statements(target, minutes, topic_id=topic_id)


def domain_totals_statement(dialect: str, target: Table, metrics: Collection[str]) -> Executable:
    """A statement that fills `target` (stat_counters) with the domains' totals of the rules of
    these metrics, from the rows as kept, zeros left out: for a migration that counts them per
    domain too."""
    c = request_source(from_events=False, topic_id=None).c
    domain = domain_sql(dialect, c.recipient_key)
    totals = []
    for rule in RULES:
        if rule.metric in metrics:
            value = func.sum(rule.total_sql(c))
            totals.append(
                select(
                    literal(int(CounterScope.DOMAIN)),
                    c.topic_id,
                    domain,
                    literal(0),
                    literal(0),
                    literal(rule.metric),
                    value,
                )
                .group_by(c.topic_id, domain)
                .having(value != 0)
            )
    return target.insert().from_select(_COUNTER_COLUMNS, union_all(*totals))


def link_statements(
    dialect: str, target: Table, *, topic_id: str | None = None
) -> list[Executable]:
    """Statements that fill `target` (stat_counters, or `recount_table`) with the links'
    counters (scope LINK) from our own clicks in the event log (of one topic), zeros left out:
    each request's clicks of each link (by its key, `link_key_sql`) and a machine's of them,
    counted by `counters.LINK_RULES`."""
    link = link_key_sql(dialect, _results.c.url)
    machine = func.coalesce(_results.c.machine, false()) == true()
    query = (
        select(
            _requests.c.topic_id,
            link.label("link"),
            func.count().label("click_count"),
            func.sum(case((machine, 1), else_=0)).label("machine_click_count"),
        )
        .select_from(_results.join(_requests, _requests.c.id == _results.c.request_id))
        .where(
            _results.c.status == EventType.CLICK.value,
            _results.c.source == ResultSource.TRACKING.value,
            _results.c.url.is_not(None),
        )
        .group_by(_requests.c.topic_id, _results.c.request_id, link)
    )
    if topic_id is not None:
        query = query.where(_requests.c.topic_id == topic_id)
    pairs = query.subquery("link_clicks")
    counts: list[Select[Any]] = []
    for index, rule in enumerate(LINK_RULES):
        value = _links.c[f"m{index}"]
        counts.append(
            select(
                literal(int(CounterScope.LINK)),
                _links.c.topic_id,
                _links.c.link,
                literal(0),
                literal(0),
                literal(rule.metric),
                value,
            ).where(value != 0)
        )
    return [
        DropTable(_links, if_exists=True),
        CreateTable(_links),
        _links.insert().from_select(
            [column.name for column in _links.columns],
            select(
                pairs.c.topic_id,
                pairs.c.link,
                *(func.sum(rule.total_sql(pairs.c)) for rule in LINK_RULES),
            ).group_by(pairs.c.topic_id, pairs.c.link),
        ),
        target.insert().from_select(_COUNTER_COLUMNS, union_all(*counts)),
        DropTable(_links),
    ]


def rebuild_statements(dialect: str) -> list[Executable]:
    """Statements that replace every counter (and pending delta) but the links' and a
    machine's opens and clicks by minute by a fresh build from the rows as kept: migration
    0013's (the links came with 0016: `link_statements`, a machine's opens and clicks with
    0017: `machine_event_statements`)."""
    return [
        _deltas.delete(),
        _counters.delete(),
        *build_statements(dialect, _counters, from_events=False),
    ]


def backfill_statement() -> Executable:
    """Set what every request keeps of its events (`EVENT_FACT_COLUMNS`) from the event log, in one
    statement: for the migration that adds those columns."""
    summary = events_summary().subquery("event_summary")
    return (
        _requests.update()
        .where(_requests.c.id == summary.c.request_id)
        .values({name: summary.c[name] for name in EVENT_FACT_COLUMNS})
    )


def recount_statements(dialect: str, topic_id: str | None) -> list[Executable]:
    """Fill `recount_table` (made anew) with the counters recounted from the rows and events."""
    return [
        DropTable(recount_table, if_exists=True),
        CreateTable(recount_table),
        *build_statements(dialect, recount_table, from_events=True, topic_id=topic_id),
        *machine_event_statements(dialect, recount_table, topic_id=topic_id),
        *link_statements(dialect, recount_table, topic_id=topic_id),
    ]


def differences_query(dialect: str, topic_id: str | None) -> Select[Any]:
    """(scope, topic, domain, grain, bucket, metric, kept, recounted) of every counter whose
    kept value (folded, plus pending deltas in each grain) differs from `recount_table`."""
    key = ("scope", "topic_id", "domain", "grain_s", "bucket", "metric")
    entries = json_object_entries(dialect, _deltas.c.domains)

    def mine(table: Table) -> list[ColumnElement[bool]]:
        if topic_id is None:
            return []
        return [table.c.topic_id == topic_id, table.c.scope != int(CounterScope.ACCOUNT_TIME)]

    kept: list[Select[Any]] = [
        select(
            *(_counters.c[name] for name in key),
            _counters.c.value.label("kept"),
            literal(0).label("recounted"),
        ).where(*mine(_counters)),
        select(
            _deltas.c.scope,
            _deltas.c.topic_id,
            _deltas.c.domain,
            literal(0),
            literal(0),
            _deltas.c.metric,
            _deltas.c.value,
            literal(0),
        ).where(_deltas.c.scope == int(CounterScope.TOPIC), *mine(_deltas)),
        # A topic's domains (links): one row a metric, packed (`StatDelta.domains`).
        select(
            _deltas.c.scope,
            _deltas.c.topic_id,
            entries.c.key,
            literal(0),
            literal(0),
            _deltas.c.metric,
            entries.c.value.cast(BigInteger),
            literal(0),
        )
        .select_from(_deltas)
        .join(entries, true())
        .where(_deltas.c.scope.in_(sorted(PACKED_SCOPES)), *mine(_deltas)),
    ]
    for grain_s in GRAINS_S:
        kept.append(
            select(
                _deltas.c.scope,
                _deltas.c.topic_id,
                _deltas.c.domain,
                literal(grain_s),
                _deltas.c.bucket - _deltas.c.bucket % literal(grain_s),
                _deltas.c.metric,
                _deltas.c.value,
                literal(0),
            ).where(
                _deltas.c.scope.in_([int(CounterScope.TOPIC_TIME), int(CounterScope.ACCOUNT_TIME)]),
                *mine(_deltas),
            )
        )
    recounted = select(*(recount_table.c[name] for name in key), literal(0), recount_table.c.value)
    both = union_all(*kept, recounted).subquery("both_sides")
    columns = [both.c[name] for name in key]
    kept_sum, recounted_sum = func.sum(both.c.kept), func.sum(both.c.recounted)
    return (
        select(*columns, kept_sum, recounted_sum)
        .group_by(*columns)
        .having(kept_sum != recounted_sum)
        .order_by(*columns)
    )


def requests_query(topic_id: str | None) -> Select[Any]:
    query = select(func.count()).select_from(_requests)
    if topic_id is not None:
        query = query.where(_requests.c.topic_id == topic_id)
    return query
