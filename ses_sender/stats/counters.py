"""What each request counts for: the one definition the live counters, the migration that builds
them and `stats verify` share.

A request counts for what its row says (`RULES`, each a condition on the row's columns, and a
time column for the time buckets), plus one count for each open and click it had, in the
minute it happened (`EVENT_RULES`), and one more for each of our own that a machine made
(`MACHINE_EVENT_RULES`). What the counters need of a request's events is kept on
its row (`Request.event_types`, `opened_at`, `clicked_at`, the open and click counts), by the
statements that attach the events: so a change to a request changes the counters by what
its row's rules give after the change less what they gave before, plus its new events, and
no change ever reads the event log to be counted.

The rules are data: `RequestChange`s are counted by evaluating them in Python on the columns
a writer knows (`change_deltas`), and the migration and `stats verify` count every request
at once by compiling the same rules to SQL aggregates (`Rule.total_sql`, repository.py).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, literal, true

from ses_sender.models import (
    CounterScope,
    EventType,
    Outcome,
    RequestChange,
    RequestStatus,
    StopReason,
)

MINUTE_S = 60
HOUR_S = 3_600
DAY_S = 86_400
GRAINS_S = (MINUTE_S, HOUR_S, DAY_S)

# A counter: (scope, topic id, domain, bucket start in epoch seconds, metric). Topic totals have
# domain "" and bucket 0; the account's buckets have topic ""; a link's counters have its URL
# (`link_key`) for domain.
CounterKey = tuple[int, str, str, int, str]
# Scopes counted for all time (bucket 0), the others by time bucket.
TOTAL_SCOPES = frozenset({CounterScope.TOPIC, CounterScope.DOMAIN, CounterScope.LINK})
# Scopes whose deltas are packed: a transaction's changes to one metric of a topic's domains
# (links) are one delta row, by domain (URL) in `StatDelta.domains`.
PACKED_SCOPES = frozenset({CounterScope.DOMAIN, CounterScope.LINK})
# A link's URL as a counter key is at most this many bytes of UTF-8: PostgreSQL refuses an index
# entry over 2,704 bytes, and the counters' key holds the topic id too (up to 1,020 bytes). A
# longer URL is cut on a character boundary and ends in `LINK_CUT`: links that share their
# first 1,497 bytes share their counters.
MAX_LINK_BYTES = 1_500
LINK_CUT = "…"

# Metrics kept. Requests queued, the sent requests SES has said nothing of, and (per domain)
# those claimed are not kept but derived (`derived_totals`); a topic's requests in flight
# (claimed) are counted from their rows by the read, a count bounded by what the workers hold
# (repository.totals). So a claim, a release or a requeue changes no counter, and a send one
# per scope.
REQUESTS = "requests"  # every request
CREATED = RequestStatus.CREATED.name.lower()  # derived
PROCESSING = RequestStatus.PROCESSING.name.lower()  # read from the rows (topic totals)
SENT = RequestStatus.SENT.name.lower()
FAILED = RequestStatus.FAILED.name.lower()
STOPPED = RequestStatus.STOPPED.name.lower()
SUPPRESSED = "suppressed"  # stopped because the address is suppressed
OUTCOME_PREFIX = "outcome:"  # + an OutcomeCounts field: sent requests by outcome
EVENTS = "events"  # requests with any event
EVENT_PREFIX = "event:"  # + an EventType: requests with an event of that type
DELIVERED = "delivered"
BOUNCED = "bounced"
COMPLAINED = "complained"
UNSUBSCRIBED = "unsubscribed"
OPENED = "opened"  # requests opened, by any source (the first open's time, in buckets)
CLICKED = "clicked"
OPENS = "opens"  # every open, in the time buckets only
CLICKS = "clicks"
# Our own opens and clicks (topic totals): every one, a machine's, and the requests with any,
# with a person's (by domain too), with a machine's. A machine's opens and clicks are in the
# time buckets too, each in its own minute.
TRACKED_OPENS = "tracked:opens"
MACHINE_OPENS = "machine:opens"
TRACKED_OPENED = "tracked:opened"
HUMAN_OPENED = "human:opened"
MACHINE_OPENED = "machine:opened"
TRACKED_CLICKS = "tracked:clicks"
MACHINE_CLICKS = "machine:clicks"
TRACKED_CLICKED = "tracked:clicked"
HUMAN_CLICKED = "human:clicked"
MACHINE_CLICKED = "machine:clicked"

OPEN_TYPES = frozenset({EventType.OPEN.value, EventType.SES_OPEN.value})
CLICK_TYPES = frozenset({EventType.CLICK.value, EventType.SES_CLICK.value})

# `Request.event_types`: one bit per event type. Stored: never renumber one.
EVENT_BITS: Mapping[str, int] = {
    EventType.SEND.value: 1 << 0,
    EventType.REJECT.value: 1 << 1,
    EventType.BOUNCE.value: 1 << 2,
    EventType.COMPLAINT.value: 1 << 3,
    EventType.DELIVERY.value: 1 << 4,
    EventType.DELIVERY_DELAY.value: 1 << 5,
    EventType.RENDERING_FAILURE.value: 1 << 6,
    EventType.SUBSCRIPTION.value: 1 << 7,
    EventType.SES_OPEN.value: 1 << 8,
    EventType.SES_CLICK.value: 1 << 9,
    EventType.OPEN.value: 1 << 10,
    EventType.CLICK.value: 1 << 11,
    EventType.UNSUBSCRIBE.value: 1 << 12,
}

# What a request keeps of its events for the rules: written by the statements that attach
# events, filled from the event log by the build (stats/build.py).
EVENT_FACT_COLUMNS = (
    "event_types",
    "opened_at",
    "clicked_at",
    "open_count",
    "machine_open_count",
    "click_count",
    "machine_click_count",
)

# The columns of a request the rules read (besides its topic and recipient).
FACT_COLUMNS = (
    "status",
    "stop_reason",
    "outcome",
    "sent_at",
    "updated_at",
    "delivered_at",
    "bounced_at",
    "complained_at",
    "unsubscribed_at",
    *EVENT_FACT_COLUMNS,
)

Facts = Mapping[str, Any]
Columns = Any  # column name -> an SQL column: a table's or a subquery's `.c`


# -- conditions: evaluated on a row's facts in Python, or compiled to SQL --------------------


class Cond:
    @property
    def columns(self) -> frozenset[str]:
        return frozenset()

    def test(self, facts: Facts) -> bool:
        raise NotImplementedError

    def sql(self, c: Columns) -> ColumnElement[bool]:
        raise NotImplementedError


@dataclass(frozen=True)
class Always(Cond):
    def test(self, facts: Facts) -> bool:
        return True

    def sql(self, c: Columns) -> ColumnElement[bool]:
        return true()


@dataclass(frozen=True)
class OneColumn(Cond):
    column: str

    @property
    def columns(self) -> frozenset[str]:
        return frozenset({self.column})


@dataclass(frozen=True)
class Is(OneColumn):
    value: int

    def test(self, facts: Facts) -> bool:
        return bool(facts[self.column] == self.value)

    def sql(self, c: Columns) -> ColumnElement[bool]:
        return c[self.column] == literal(self.value)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Present(OneColumn):
    def test(self, facts: Facts) -> bool:
        return facts[self.column] is not None

    def sql(self, c: Columns) -> ColumnElement[bool]:
        return c[self.column].is_not(None)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HasBit(OneColumn):
    bit: int

    def test(self, facts: Facts) -> bool:
        return bool(facts[self.column] & self.bit)

    def sql(self, c: Columns) -> ColumnElement[bool]:
        return c[self.column].op("&")(literal(self.bit)) != 0  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Above(OneColumn):
    """The column is larger than another column (or than 0)."""

    other: str | None = None

    @property
    def columns(self) -> frozenset[str]:
        return frozenset({self.column} | ({self.other} if self.other else set()))

    def test(self, facts: Facts) -> bool:
        return bool(facts[self.column] > (facts[self.other] if self.other else 0))

    def sql(self, c: Columns) -> ColumnElement[bool]:
        other = c[self.other] if self.other else literal(0)
        return c[self.column] > other  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Both(Cond):
    """Every condition, in order: a later one is not looked at once one fails (a sent
    request's outcome, say, whose columns a writer that did not send it need not know)."""

    conds: tuple[Cond, ...]

    @property
    def columns(self) -> frozenset[str]:
        return frozenset().union(*(cond.columns for cond in self.conds))

    def test(self, facts: Facts) -> bool:
        return all(cond.test(facts) for cond in self.conds)

    def sql(self, c: Columns) -> ColumnElement[bool]:
        return and_(*(cond.sql(c) for cond in self.conds))


@dataclass(frozen=True)
class Rule:
    """A metric a request counts in: `weight` (the value of that column, or 1) while `when`
    holds, in the `totals` scopes; and, with `at`, once in the minute of that column's time
    (TOPIC_TIME and ACCOUNT_TIME), when the time is set."""

    metric: str
    when: Cond
    totals: tuple[CounterScope, ...] = (CounterScope.TOPIC, CounterScope.DOMAIN)
    at: str | None = None
    weight: str | None = None
    columns: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        extra = {name for name in (self.at, self.weight) if name is not None}
        object.__setattr__(self, "columns", self.when.columns | extra)

    def total(self, facts: Facts) -> int:
        if not self.when.test(facts):
            return 0
        return 1 if self.weight is None else int(facts[self.weight])

    def minute(self, facts: Facts) -> int | None:
        """The minute this request counts in (once), if it does."""
        if self.at is None or not self.when.test(facts):
            return None
        at = facts[self.at]
        return None if at is None else minute_of(at)

    def total_sql(self, c: Columns) -> ColumnElement[Any]:
        weight = literal(1) if self.weight is None else c[self.weight]
        return case((self.when.sql(c), weight), else_=literal(0))


_TOPIC_ONLY = (CounterScope.TOPIC,)
# The emails a person opened (clicked) are counted per domain too (since migration 0017).
HUMAN_SCOPES = (CounterScope.TOPIC, CounterScope.DOMAIN)


def _status(status: RequestStatus) -> Is:
    return Is("status", int(status))


RULES: tuple[Rule, ...] = (
    Rule(REQUESTS, Always()),
    Rule(SENT, _status(RequestStatus.SENT), at="sent_at"),
    Rule(FAILED, _status(RequestStatus.FAILED), at="updated_at"),
    Rule(STOPPED, _status(RequestStatus.STOPPED)),
    Rule(
        SUPPRESSED,
        Both((_status(RequestStatus.STOPPED), Is("stop_reason", int(StopReason.SUPPRESSED)))),
    ),
    *(
        Rule(
            OUTCOME_PREFIX + outcome.name.lower(),
            Both((_status(RequestStatus.SENT), Is("outcome", int(outcome)))),
        )
        for outcome in Outcome
    ),
    Rule(DELIVERED, Present("delivered_at"), at="delivered_at"),
    Rule(BOUNCED, Present("bounced_at"), at="bounced_at"),
    Rule(COMPLAINED, Present("complained_at"), at="complained_at"),
    Rule(UNSUBSCRIBED, Present("unsubscribed_at"), at="unsubscribed_at"),
    Rule(EVENTS, Above("event_types")),
    *(Rule(EVENT_PREFIX + name, HasBit("event_types", bit)) for name, bit in EVENT_BITS.items()),
    Rule(OPENED, Present("opened_at"), at="opened_at"),
    Rule(CLICKED, Present("clicked_at"), at="clicked_at"),
    *(
        Rule(metric, when, totals=totals, weight=weight)
        for kind in ("open", "click")
        for metric, when, weight, totals in (
            (f"tracked:{kind}s", Above(f"{kind}_count"), f"{kind}_count", _TOPIC_ONLY),
            (
                f"machine:{kind}s",
                Above(f"machine_{kind}_count"),
                f"machine_{kind}_count",
                _TOPIC_ONLY,
            ),
            (f"tracked:{kind}ed", Above(f"{kind}_count"), None, _TOPIC_ONLY),
            (
                f"human:{kind}ed",
                Above(f"{kind}_count", f"machine_{kind}_count"),
                None,
                HUMAN_SCOPES,
            ),
            (f"machine:{kind}ed", Above(f"machine_{kind}_count"), None, _TOPIC_ONLY),
        )
    ),
)
# Every event of these types counts once in its own minute.
EVENT_RULES: tuple[tuple[str, frozenset[str]], ...] = ((OPENS, OPEN_TYPES), (CLICKS, CLICK_TYPES))
# And every one of these that a machine made (`RequestChange.machine_events`) once more.
MACHINE_EVENT_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    (MACHINE_OPENS, frozenset({EventType.OPEN.value})),
    (MACHINE_CLICKS, frozenset({EventType.CLICK.value})),
)
_EVENT_METRIC = {event_type: metric for metric, types in EVENT_RULES for event_type in types}
_MACHINE_EVENT_METRIC = {
    event_type: metric for metric, types in MACHINE_EVENT_RULES for event_type in types
}
_RULE_COLUMNS = frozenset().union(*(rule.columns for rule in RULES))
# A topic's clicks of one link (scope LINK) count by the rules of our own clicks, read on what
# one request did with that link alone: its clicks of it and a machine's of them.
LINK_FACT_COLUMNS = ("click_count", "machine_click_count")
LINK_RULES = tuple(
    rule for rule in RULES if rule.columns and rule.columns <= frozenset(LINK_FACT_COLUMNS)
)


class LinkChange(NamedTuple):
    """A request's clicks of one link (`LINK_FACT_COLUMNS`) as they were and as they are."""

    topic_id: str
    link: str  # the URL as a counter key (`link_key`)
    before: Facts
    after: Facts


def domain_of(recipient_key: str) -> str:
    return recipient_key.rpartition("@")[2]


def link_key(url: str) -> str:
    """The URL as its counters' key: itself, or cut to `MAX_LINK_BYTES` (build.link_key_sql)."""
    encoded = url.encode()
    if len(encoded) <= MAX_LINK_BYTES:
        return url
    # A cut inside a character leaves a partial one at the end: the only bytes ignored.
    kept = encoded[: MAX_LINK_BYTES - len(LINK_CUT.encode())].decode(errors="ignore")
    return kept + LINK_CUT


def minute_of(at: datetime) -> int:
    return int(at.timestamp()) // MINUTE_S * MINUTE_S


def bucket_of(start_s: int, grain_s: int) -> int:
    return start_s // grain_s * grain_s


def outcome_metric(outcome: int | None) -> str:
    """The `OutcomeCounts` field a sent request counts in."""
    name = "sent" if outcome is None else Outcome(outcome).name.lower()
    return OUTCOME_PREFIX + name


def event_bits(event_types: Iterable[str]) -> int:
    bits = 0
    for event_type in event_types:
        bits |= EVENT_BITS.get(event_type, 0)
    return bits


def new_row(**columns: Any) -> dict[str, Any]:
    """The facts of a row just inserted: `columns` over the defaults of a queued request."""
    facts: dict[str, Any] = dict.fromkeys(FACT_COLUMNS)
    facts.update(
        status=int(RequestStatus.CREATED),
        event_types=0,
        open_count=0,
        machine_open_count=0,
        click_count=0,
        machine_click_count=0,
    )
    facts.update(columns)
    return facts


# -- counting changes -------------------------------------------------------------------------


_MISSING = object()
_TOPIC, _DOMAIN, _TIMED = int(CounterScope.TOPIC), int(CounterScope.DOMAIN), -1
# What a change of one shape does, whatever its topic and domain: (where, metric, minute, n).
Effects = tuple[tuple[int, str, int, int], ...]
_EFFECTS_KEPT = 4_096  # shapes remembered (a shape includes its minutes, its message id...)
_effects: dict[Any, Effects] = {}


def change_deltas(changes: Iterable[RequestChange]) -> dict[CounterKey, int]:
    """What these changes do to the counters (zeros left out).

    For a change to an existing row, only the rules that read a column the change touched are
    looked at, on the row as it was and as it is; a rule that needs a column the writer did
    not give raises KeyError (a writer that forgot one must not count wrong). Changes of one
    shape (the same columns, the same values, times to the minute) are worked out once, and
    changes that share their `before` and `after` mappings (a batch of sends grouped by its
    writer, a claim's rows) are looked at once."""
    # The loop runs for every row a writer changed: what it does for a change whose mappings
    # were seen is an identity test or a dictionary lookup, and a tally. Changes with the same
    # effects in the same topic and domain are tallied by the effects' identity (hashing them,
    # tuples of tuples, costs more than the rest), and the counters' keys made once per tally.
    seen: dict[tuple[int, int], tuple[Effects, Facts | None, Facts]] = {}
    kept: dict[int, Effects] = {}  # by id: kept alive, so no id is reused
    tally: dict[tuple[int, str, str], int] = {}
    counts: dict[CounterKey, int] = {}
    last_before: Any = _MISSING
    last_after: Any = _MISSING
    effects: Effects = ()
    shaped_before: Facts | None = None  # a batch of sends shares the claimed state: shaped once
    before_shape: Any = None
    for topic_id, recipient_key, before, after, events, machine_events in changes:
        if after is not last_after or before is not last_before:  # else: the same as the last
            pair = (id(before), id(after))
            # `seen` keeps the mappings alive: their ids are not reused meanwhile.
            found = seen.get(pair)
            if found is None:
                if before is not None and before is not shaped_before:
                    shaped_before, before_shape = before, _shape(before)
                effects = _effects_of(before, after, None if before is None else before_shape)
                kept[id(effects)] = effects
                seen[pair] = (effects, before, after)
            else:
                effects = found[0]
            last_before, last_after = before, after
        if effects:
            tallied = (id(effects), topic_id, domain_of(recipient_key))
            tally[tallied] = tally.get(tallied, 0) + 1
        _count_events(counts, topic_id, events, _EVENT_METRIC)
        _count_events(counts, topic_id, machine_events, _MACHINE_EVENT_METRIC)
    for (effects_id, topic, domain), times in tally.items():
        for where, metric, minute, value in kept[effects_id]:
            if where == _TIMED:
                keys: tuple[CounterKey, ...] = (
                    (CounterScope.TOPIC_TIME, topic, "", minute, metric),
                    (CounterScope.ACCOUNT_TIME, "", "", minute, metric),
                )
            elif where == _DOMAIN:
                keys = ((CounterScope.DOMAIN, topic, domain, 0, metric),)
            else:
                keys = ((CounterScope.TOPIC, topic, "", 0, metric),)
            for key in keys:
                counts[key] = counts.get(key, 0) + value * times
    return {key: value for key, value in counts.items() if value}


def _count_events(
    counts: dict[CounterKey, int],
    topic_id: str,
    events: Iterable[tuple[str, datetime]],
    metrics: Mapping[str, str],
) -> None:
    """Each event a metric counts (by its type) once in its minute, the topic's and the
    account's."""
    for event_type, at in events:
        metric = metrics.get(event_type)
        if metric is not None:
            minute = minute_of(at)
            for timed in (
                (CounterScope.TOPIC_TIME, topic_id, "", minute, metric),
                (CounterScope.ACCOUNT_TIME, "", "", minute, metric),
            ):
                counts[timed] = counts.get(timed, 0) + 1


def link_deltas(changes: Iterable[LinkChange]) -> dict[CounterKey, int]:
    """What these changes to requests' clicks of links do to the link counters (zeros left
    out)."""
    counts: dict[CounterKey, int] = {}
    for topic_id, link, before, after in changes:
        for rule in LINK_RULES:
            value = rule.total(after) - rule.total(before)
            if value:
                key = (CounterScope.LINK, topic_id, link, 0, rule.metric)
                counts[key] = counts.get(key, 0) + value
    return {key: value for key, value in counts.items() if value}


def contribution(topic_id: str, recipient_key: str, facts: Facts) -> dict[CounterKey, int]:
    """What one row counts for by its columns (its events' own minutes left out)."""
    return change_deltas([RequestChange(topic_id, recipient_key, None, facts)])


def _effects_of(before: Facts | None, after: Facts, before_shape: Any) -> Effects:
    """The effects of a change, looked up by its shape: every column it gives, before and after,
    times to the minute (all a rule reads of them)."""
    key = (before_shape, _shape(after))
    found = _effects.get(key)
    if found is None:
        if len(_effects) >= _EFFECTS_KEPT:
            _effects.clear()
        found = _effects[key] = _work_out(before, after)
    return found


def _shape(facts: Facts) -> tuple[tuple[str, Any], ...]:
    """The columns a rule reads, in the writer's order (a writer gives its columns in one
    order: the same shape is the same key), times to the minute."""
    return tuple(
        [
            (column, int(value.timestamp()) // MINUTE_S if isinstance(value, datetime) else value)
            for column, value in facts.items()
            if column in _RULE_COLUMNS
        ]
    )


def _work_out(before: Facts | None, after: Facts) -> Effects:
    found: Counter[tuple[int, str, int]] = Counter()
    if before is None:
        rules: Iterable[Rule] = RULES
    else:
        touched = {
            column
            for column in after.keys() | before.keys()
            if before.get(column, _MISSING) != after.get(column, _MISSING)
        }
        rules = tuple(rule for rule in RULES if rule.columns & touched)
    for rule in rules:
        for facts, sign in ((after, 1), (before, -1)):
            if facts is None:
                continue
            total = rule.total(facts)
            if not total:
                continue
            for scope in rule.totals:
                found[int(scope), rule.metric, 0] += sign * total
            if rule.at is not None and (at := facts[rule.at]) is not None:
                found[_TIMED, rule.metric, minute_of(at)] += sign
    return tuple(
        (where, metric, minute, value) for (where, metric, minute), value in found.items() if value
    )


@functools.cache
def columns_read_with(changed: frozenset[str]) -> tuple[str, ...]:
    """The columns the counters read of a change to these columns: those the rules reading any
    of them read (the status beside an outcome, say). A writer that gives only those gives the
    rules all they need, and no more to shape."""
    read: set[str] = set()
    for rule in RULES:
        if rule.columns & changed:
            read |= rule.columns
    return tuple(sorted(read))


def spread_over_grains(minutes: Mapping[CounterKey, int]) -> dict[tuple[CounterKey, int], int]:
    """Counts by minute as the counters keep them: totals once (grain 0), time buckets in the
    minute, the hour and the day; by (key, grain)."""
    spread: Counter[tuple[CounterKey, int]] = Counter()
    for key, value in minutes.items():
        scope, topic, domain, bucket, metric = key
        if scope in TOTAL_SCOPES:
            spread[key, 0] += value
            continue
        for grain_s in GRAINS_S:
            spread[(scope, topic, domain, bucket_of(bucket, grain_s), metric), grain_s] += value
    return dict(spread)


# -- reading: the counts not kept -------------------------------------------------------------


def derived_totals(found: Mapping[str, int], scope: CounterScope) -> dict[str, int]:
    """The totals as kept (with, for a topic, its requests in flight as read), and those derived
    from them: requests queued (for a domain: queued or in flight), and sent requests SES said
    nothing of."""
    counts = dict(found)
    done = counts.get(SENT, 0) + counts.get(FAILED, 0) + counts.get(STOPPED, 0)
    in_flight = counts.get(PROCESSING, 0) if scope == CounterScope.TOPIC else 0
    counts[CREATED] = counts.get(REQUESTS, 0) - done - in_flight
    counts[outcome_metric(None)] = counts.get(SENT, 0) - sum(
        counts.get(outcome_metric(outcome), 0) for outcome in Outcome
    )
    return counts
