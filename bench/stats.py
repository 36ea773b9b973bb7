"""Stats benchmark: the reads at size, and what keeping the counters costs.

    .venv/bin/python -m bench.stats               # 10,000,000 on PostgreSQL, 1,000,000 on SQLite
    .venv/bin/python -m bench.stats --scale 0.01  # a hundredth of that, for a quick run
    .venv/bin/python -m bench.stats --backends postgresql --keep       # prints the database's URL
    .venv/bin/python -m bench.stats --reads-only --database URL        # the reads again, on it

For each backend, in a fresh database (SQLite in a temporary file, PostgreSQL in a temporary
database created and dropped here), against the real code:

1. load: the schema as it was before the counters were built (migration 0012); requests
   bulk-loaded with one SQL statement (90 % in one topic, the rest over 1,000 small ones; 40 %
   gmail.com, 20 % naver.com, the rest over 997 domains; 90 % sent over a week, 3 % failed, 5 %
   queued, 2 % cancelled), then about three events per request (Send, Delivery or Bounce, opens,
   SES clicks) and our own clicks of 40 links (a third of the delivered requests, some twice, a
   quarter a machine's);
2. build: the migrations from there on, timed: 0013 fills what each request keeps of its
   events and builds the counters in SQL (stats/build.py), 0016 the links', 0017 a machine's
   opens and clicks by minute; the counters measured are the ones they build, which the
   service keeps from then on;
3. reads: each read of the stats API, by its service function, `--repeat` times after one
   untimed call (a running service has compiled and prepared its statements), with the
   collector kept off what start-up made, as in the service: p50 and p95;
4. cost: claiming and recording sends (batches of 200) and ingesting SES Delivery events (50
   notifications a transaction, as the SNS endpoint's group commit), alternately with the
   counters kept and with the counting replaced by nothing (after an untimed round of each), in
   the same database, with the collector kept off what start-up made as the service's
   processes do: the rate with over the rate without, over all the rounds (`--rounds` of
   each kind) and as the median of the rounds' own ratios, of their rates and of this
   process's CPU time an item (SQLite's work included). (What a request keeps of its
   events for the counters is kept in both: it is written by the statements that record
   them, and the lookup that locks the requests an SNS batch changes runs in both; working
   out what the batch changed in them, for the counters only, runs only with them.)

Only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.ingest import DEFAULT_POSTGRES, POSTGRES_ENV, BenchError, postgres_database
from ses_sender.clock import SystemClock
from ses_sender.config import to_async_url
from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import alembic_config
from ses_sender.delivery.claimer import Claimer
from ses_sender.delivery.emails import Sent
from ses_sender.delivery.journal import OutcomeJournal
from ses_sender.delivery.leases import Leases
from ses_sender.delivery.recorder import Recorder
from ses_sender.ses_events import service as ses_events_service
from ses_sender.ses_events.service import Received, ingest_notifications
from ses_sender.ses_events.sns import SnsMessage
from ses_sender.ses_tags import REQUEST_ID_TAG
from ses_sender.stats import service
from ses_sender.stats.hooks import StatsHooks
from ses_sender.suppression.service import SoftBounceRule

BACKENDS = ("postgresql", "sqlite")
FULL_SIZE = {"postgresql": 10_000_000, "sqlite": 1_000_000}
DEFAULT_REPEAT = 50
SEND_BATCH = 200
SNS_BATCH = 50
COST_ROUNDS = 12  # of each mode, alternating (--rounds)
WARM_UP_ROUNDS = 1  # of each mode, first, not timed (statements compiled and prepared)
SENDS_PER_ROUND = 1_000
EVENTS_PER_ROUND = 500
SOFT_BOUNCES = SoftBounceRule(limit=3, window=timedelta(days=7))
BIG_TOPIC = "big"
COST_TOPIC = "cost"
BEFORE_COUNTERS = "0012"  # the counters' tables (0008) and the clicks' URLs (0012), unfilled
LINKS = 40  # a topic's tracked links our own clicks spread over
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# Requests: id i in 1..N. Times are seconds before :now; SQLite keeps times as text.
_REQUESTS = {
    "postgresql": """
        INSERT INTO email_requests (id, topic_id, "to", recipient_key, content_id,
            scheduled_at, status, due_at, attempts, message_id, sent_at, delivered_at,
            bounced_at, bounce_type, outcome, stop_reason, error, held, open_count,
            click_count, created_at, updated_at)
        SELECT i, topic, address, address, 1, CAST(:now AS timestamptz), status,
            CAST(:now AS timestamptz), 1,
            CASE WHEN status = 2 THEN 'm-' || i END,
            CASE WHEN status = 2 THEN sent END,
            CASE WHEN status = 2 AND i % 100 < 85 THEN sent + interval '5 seconds' END,
            CASE WHEN status = 2 AND i % 100 >= 85 THEN sent + interval '5 seconds' END,
            CASE WHEN status = 2 AND i % 100 >= 85 THEN 'Permanent/General' END,
            CASE WHEN status = 2 AND i % 100 < 85 THEN 20 WHEN status = 2 THEN 50 END,
            CASE WHEN status = 4 THEN 1 END,
            CASE WHEN status = 3 THEN 'MessageRejected' END,
            false, 0, 0, CAST(:now AS timestamptz) - interval '8 days',
            COALESCE(sent, CAST(:now AS timestamptz))
        FROM (
            SELECT i,
                CASE WHEN i % 10 = 0 THEN 't' || (i / 10 % 1000) ELSE 'big' END AS topic,
                'u' || i || '@' || CASE WHEN i % 10 < 4 THEN 'gmail.com'
                    WHEN i % 10 < 6 THEN 'naver.com' ELSE 'd' || (i % 997) || '.example' END
                    AS address,
                CASE WHEN i % 100 < 90 THEN 2 WHEN i % 100 < 93 THEN 3
                    WHEN i % 100 < 98 THEN 0 ELSE 4 END AS status,
                CAST(:now AS timestamptz) - (i % 604800) * interval '1 second' AS sent
            FROM generate_series(1, :count) AS i
        ) AS generated
    """,
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
        INSERT INTO email_requests (id, topic_id, "to", recipient_key, content_id,
            scheduled_at, status, due_at, attempts, message_id, sent_at, delivered_at,
            bounced_at, bounce_type, outcome, stop_reason, error, held, open_count,
            click_count, created_at, updated_at)
        SELECT i, topic, address, address, 1, :now, status, :now, 1,
            CASE WHEN status = 2 THEN 'm-' || i END,
            CASE WHEN status = 2 THEN sent END,
            CASE WHEN status = 2 AND i % 100 < 85
                THEN strftime('%Y-%m-%d %H:%M:%f', sent, '+5 seconds') END,
            CASE WHEN status = 2 AND i % 100 >= 85
                THEN strftime('%Y-%m-%d %H:%M:%f', sent, '+5 seconds') END,
            CASE WHEN status = 2 AND i % 100 >= 85 THEN 'Permanent/General' END,
            CASE WHEN status = 2 AND i % 100 < 85 THEN 20 WHEN status = 2 THEN 50 END,
            CASE WHEN status = 4 THEN 1 END,
            CASE WHEN status = 3 THEN 'MessageRejected' END,
            0, 0, 0, strftime('%Y-%m-%d %H:%M:%f', :now, '-8 days'), COALESCE(sent, :now)
        FROM (
            SELECT i,
                CASE WHEN i % 10 = 0 THEN 't' || (i / 10 % 1000) ELSE 'big' END AS topic,
                'u' || i || '@' || CASE WHEN i % 10 < 4 THEN 'gmail.com'
                    WHEN i % 10 < 6 THEN 'naver.com' ELSE 'd' || (i % 997) || '.example' END
                    AS address,
                CASE WHEN i % 100 < 90 THEN 2 WHEN i % 100 < 93 THEN 3
                    WHEN i % 100 < 98 THEN 0 ELSE 4 END AS status,
                strftime('%Y-%m-%d %H:%M:%f', :now, '-' || (i % 604800) || ' seconds') AS sent
            FROM n
        )
    """,
}
# About three events a request: (type, which sent requests, the time's offset in seconds from
# the send, a copy number for a second open).
_EVENTS = [
    ("Send", "TRUE", 0, 0),
    ("Delivery", "id % 100 < 85", 5, 0),
    ("Bounce", "id % 100 >= 85", 5, 0),
    ("Open", "id % 100 < 85 AND id % 5 < 3", 600, 0),
    ("Open", "id % 100 < 85 AND id % 5 < 3", 3600, 1),
    ("Click", "id % 100 < 85 AND id % 5 = 0", 900, 0),
]


# Our own clicks: (which sent requests, the time's offset in seconds from the send). The second
# follows the same link again; a quarter are a machine's.
_TRACKED_CLICKS = [("id % 100 < 85 AND id % 5 < 2", 900), ("id % 100 < 85 AND id % 5 = 0", 1200)]


def _sent_plus(backend: str, offset_s: int) -> str:
    if backend == "postgresql":
        return f"sent_at + interval '{offset_s} seconds'"
    return f"strftime('%Y-%m-%d %H:%M:%f', sent_at, '+{offset_s} seconds')"


def _tracked_clicks_sql(backend: str, which: str, offset_s: int) -> str:
    at = _sent_plus(backend, offset_s)
    return f"""
        INSERT INTO email_results (request_id, status, source, recipient, occurred_at, raw,
            created_at, url, machine, reason)
        SELECT id, 'Click', 'tracking', recipient_key, {at}, '{{}}', {at},
            'https://shop.example/p/' || (id / 100 % {LINKS}), id % 4 = 0,
            CASE WHEN id % 4 = 0 THEN 'scanner-network' ELSE 'direct' END
        FROM email_requests WHERE status = 2 AND ({which})
    """  # noqa: S608 - our own constants


def _events_sql(backend: str, kind: str, which: str, offset_s: int, copy: int) -> str:
    at = _sent_plus(backend, offset_s)
    return f"""
        INSERT INTO email_results (request_id, status, source, sns_message_id, ses_message_id,
            recipient, occurred_at, raw, created_at)
        SELECT id, '{kind}', 'ses', 'sns-{kind}-{copy}-' || id, message_id, recipient_key,
            {at}, '{{}}', {at}
        FROM email_requests WHERE status = 2 AND ({which})
    """  # noqa: S608 - our own constants


@dataclass
class Cost:
    """What keeping the counters costs one path: its rate with them and without, over all the
    rounds, and the median of the rounds' own ratios, of rates and of this process's CPU time
    an item (a burst of load on a shared machine moves the totals, one round's ratio less,
    and the CPU time least; it holds SQLite's work, not PostgreSQL's server's)."""

    with_per_s: float
    without_per_s: float
    median_ratio: float
    median_cpu_ratio: float


@dataclass
class Figures:
    backend: str
    requests: int
    events: int
    load_s: float
    build_s: float
    reads_ms: dict[str, tuple[float, float]]  # read -> (p50, p95)
    sends_per_s: Cost | None  # None: not measured
    events_per_s: Cost | None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="a share of the full size (10,000,000 requests on PostgreSQL, 1,000,000 on SQLite)",
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument(
        "--rounds",
        type=int,
        default=COST_ROUNDS,
        help="cost rounds of each kind, with the counters and without, alternating",
    )
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES))
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep each loaded database (a PostgreSQL database, an SQLite file) and print its URL",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="measure the reads of a database a run with --keep loaded (with --reads-only)",
    )
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="skip the cost rounds (they claim the loaded queued rows: a database takes one)",
    )
    args = parser.parse_args(argv)
    if args.database is not None and not args.reads_only:
        parser.error("--database needs --reads-only: the cost rounds have claimed its rows")
    results = []
    try:
        if args.database is not None:
            figures = asyncio.run(_measure_kept(args.database, args.repeat))
            _print(figures)
            results.append(figures)
        for backend in [] if args.database else args.backends.split(","):
            size = max(_cost_rows(args.rounds), int(FULL_SIZE[backend] * args.scale))
            with _database(backend, args.postgres, keep=args.keep) as url:
                figures = _run(
                    backend, url, size, args.repeat, args.rounds, cost=not args.reads_only
                )
                if args.keep:
                    print(f"{backend}: kept {url}")
            _print(figures)
            results.append(figures)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(figures) for figures in results], indent=2))
    return 0


def _cost_rows(rounds: int) -> int:
    """Queued rows the cost rounds claim, copied from the loaded ones (so at least as many
    load)."""
    return 2 * (rounds + WARM_UP_ROUNDS) * SENDS_PER_ROUND


@contextlib.contextmanager
def _database(backend: str, postgres_dsn: str, *, keep: bool) -> Iterator[str]:
    if backend == "sqlite" and keep:
        yield f"sqlite:///{Path(tempfile.mkdtemp(prefix='ses-sender-bench-')) / 'bench.db'}"
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ses-sender-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
    elif backend == "postgresql":
        with postgres_database(postgres_dsn, keep=keep) as url:
            yield url
    else:
        raise BenchError(f"unknown backend {backend!r}")


def _run(backend: str, url: str, size: int, repeat: int, rounds: int, *, cost: bool) -> Figures:
    command.upgrade(alembic_config(url), BEFORE_COUNTERS)
    started = time.perf_counter()
    requests, events = asyncio.run(_load(backend, url, size, _cost_rows(rounds)))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    command.upgrade(alembic_config(url), "head")
    build_s = time.perf_counter() - started
    asyncio.run(_analyze(url))
    return asyncio.run(
        _measure(backend, url, requests, events, load_s, build_s, repeat, rounds if cost else 0)
    )


async def _measure_kept(url: str, repeat: int) -> Figures:
    """The reads of a database loaded before, brought to this code's schema first."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    engine = create_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            requests = await connection.scalar(text("SELECT count(*) FROM email_requests"))
            events = await connection.scalar(text("SELECT count(*) FROM email_results"))
            backend = connection.dialect.name
    finally:
        await engine.dispose()
    return await _measure(backend, url, int(requests or 0), int(events or 0), 0.0, 0.0, repeat, 0)


async def _load(backend: str, url: str, size: int, cost_rows: int) -> tuple[int, int]:
    engine = create_engine(to_async_url(url))
    now: Any = NOW.replace(tzinfo=None).isoformat(sep=" ") if backend == "sqlite" else NOW
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO email_contents (id, topic_id, subject, content, created_at) "
                    "VALUES (1, 'big', 'Hi', '<p>Hi</p>', :now)"
                ),
                {"now": now},
            )
            await connection.execute(text(_REQUESTS[backend]), {"count": size, "now": now})
            # Queued rows for the cost measurement, in a topic of their own.
            await connection.execute(
                text(
                    'INSERT INTO email_requests (id, topic_id, "to", recipient_key, content_id, '
                    "scheduled_at, status, due_at, attempts, held, open_count, click_count, "
                    "created_at, updated_at) "
                    'SELECT id + :size, :topic, "to", recipient_key, 1, scheduled_at, 0, due_at, '
                    "0, held, 0, 0, created_at, created_at FROM email_requests WHERE id <= :rows"
                ),
                {"size": size, "topic": COST_TOPIC, "rows": cost_rows},
            )
            for kind, which, offset_s, copy in _EVENTS:
                await connection.execute(text(_events_sql(backend, kind, which, offset_s, copy)))
            for which, offset_s in _TRACKED_CLICKS:
                await connection.execute(text(_tracked_clicks_sql(backend, which, offset_s)))
            if backend == "postgresql":
                await connection.execute(
                    text("SELECT setval('email_requests_id_seq', :last)"),
                    {"last": size + cost_rows},
                )
        await _analyze(url)
        async with engine.connect() as connection:
            events = await connection.scalar(text("SELECT count(*) FROM email_results"))
    finally:
        await engine.dispose()
    return size + cost_rows, int(events or 0)


async def _analyze(url: str) -> None:
    """The planner's statistics of what was just written, as autovacuum soon has them."""
    engine = create_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("VACUUM ANALYZE"))
            else:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def _measure(
    backend: str,
    url: str,
    requests: int,
    events: int,
    load_s: float,
    build_s: float,
    repeat: int,
    rounds: int,
) -> Figures:
    """The reads, and `rounds` cost rounds of each kind (none: not measured)."""
    engine = create_engine(to_async_url(url))
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            page = await service.list_topics(session, cursor=None, limit=50)
        reads = _reads(BIG_TOPIC, page.next_cursor)
        # As the service's processes run: what start-up made is out of the collector's sight
        # (process.py), or full collections of it fall on whichever read or mode allocates more.
        gc.collect()
        gc.freeze()
        reads_ms = {
            name: await _percentiles(sessionmaker, read, repeat) for name, read in reads.items()
        }
        sends = await _cost(lambda with_: _sends(sessionmaker, with_), rounds) if rounds else None
        ingested = (
            await _cost(lambda with_: _events(sessionmaker, with_), rounds) if rounds else None
        )
    finally:
        await engine.dispose()
    return Figures(backend, requests, events, load_s, build_s, reads_ms, sends, ingested)


Read = Callable[[AsyncSession], Awaitable[object]]


def _reads(topic: str, cursor: str | None) -> dict[str, Read]:
    now = NOW

    def span(bucket: str, buckets: int) -> service.TimeRange:
        grain = service.GRAINS_S[bucket]
        start = (now - timedelta(seconds=grain * (buckets - 1))).isoformat()
        return service.parse_time_range(start, now.isoformat(), bucket, now=now)

    return {
        "GET /v1/topics/{id}": lambda s: service.topic_stats(s, topic),
        "GET /v1/topics": lambda s: service.list_topics(s, cursor=None, limit=50),
        "GET /v1/topics?cursor": lambda s: service.list_topics(s, cursor=cursor, limit=50),
        "timeline minute x1440": lambda s: service.topic_timeline(s, topic, span("minute", 1440)),
        "timeline hour x168": lambda s: service.topic_timeline(s, topic, span("hour", 168)),
        "timeline day x30": lambda s: service.topic_timeline(s, topic, span("day", 30)),
        "account timeline hour x168": lambda s: service.account_timeline(s, span("hour", 168)),
        "domains (100 largest)": lambda s: service.topic_domains(s, topic),
        f"links ({LINKS})": lambda s: service.topic_links(s, topic),
        "counts/sent hours=24": lambda s: service.sent_count(s, 24, now=now),
        "counts/sent hours=168": lambda s: service.sent_count(s, 168, now=now),
    }


async def _percentiles(
    sessionmaker: async_sessionmaker[AsyncSession], read: Read, repeat: int
) -> tuple[float, float]:
    timings = []
    for _ in range(repeat + 1):
        async with sessionmaker() as session, session.begin():
            started = time.perf_counter()
            await read(session)
            timings.append((time.perf_counter() - started) * 1000)
    warm = timings[1:]
    return statistics.median(warm), statistics.quantiles(warm, n=20)[18]


# A cost round: seconds an item, (wall-clock, this process's CPU time).
Round = tuple[float, float]


async def _cost(round_: Callable[[bool], Awaitable[Round]], rounds: int) -> Cost:
    """The rates with counters and without: the kinds alternate, so drift hits both alike."""
    for _ in range(WARM_UP_ROUNDS):
        await round_(True)
        await round_(False)
    kept: list[Round] = []
    bare: list[Round] = []
    for number in range(rounds):
        # Each kind goes first in every other round: what follows a round (a checkpoint of
        # what it wrote, a collection) falls on both alike.
        if number % 2:
            bare.append(await round_(False))
            kept.append(await round_(True))
        else:
            kept.append(await round_(True))
            bare.append(await round_(False))
    pairs = list(zip(kept, bare, strict=True))
    return Cost(
        rounds / sum(wall for wall, _cpu in kept),
        rounds / sum(wall for wall, _cpu in bare),
        # A round's ratio of rates is the inverse of its ratio of times.
        statistics.median(without[0] / with_[0] for with_, without in pairs),
        statistics.median(without[1] / with_[1] for with_, without in pairs),
    )


@contextlib.contextmanager
def _timed(items: int) -> Iterator[list[Round]]:
    """The seconds an item of the block, wall-clock and CPU, in the list it yields."""
    found: list[Round] = []
    started, started_cpu = time.perf_counter(), time.process_time()
    yield found
    found.append(
        (
            (time.perf_counter() - started) / max(1, items),
            (time.process_time() - started_cpu) / max(1, items),
        )
    )


@contextlib.asynccontextmanager
async def _no_counting(_session: AsyncSession, _ids: Collection[int]) -> AsyncIterator[object]:
    yield service.Counted()


async def _no_changes(*_args: object, **_kwargs: object) -> None:
    return None


def _no_request_changes(*_args: object) -> list[object]:
    return []


class _NoCounter:
    """The engine's counter port, counting nothing."""

    async def changed(self, _session: AsyncSession, _changes: object) -> None:
        return None

    def counting(
        self, session: AsyncSession, request_ids: Collection[int]
    ) -> contextlib.AbstractAsyncContextManager[object]:
        return _no_counting(session, request_ids)


@contextlib.contextmanager
def _counters(kept: bool) -> Iterator[None]:
    if kept:
        yield
        return
    # What an SNS batch did to its requests is worked out for the counters only: not without.
    with (
        mock.patch.object(service, "counting", _no_counting),
        mock.patch.object(service, "count_changes", _no_changes),
        mock.patch.object(ses_events_service, "_changes", _no_request_changes),
    ):
        yield


async def _sends(sessionmaker: async_sessionmaker[AsyncSession], kept: bool) -> Round:
    """Seconds per email to claim and record `SENDS_PER_ROUND` sends."""
    clock = SystemClock()
    hooks: StatsHooks | _NoCounter = StatsHooks() if kept else _NoCounter()
    leases = Leases(sessionmaker, clock=clock, lease_s=300, send_timeout_s=30)
    claimer = Claimer(sessionmaker, gates=[], counter=hooks, clock=clock, leases=leases)
    with tempfile.TemporaryDirectory(prefix="bench-stats-journal-") as journal:
        recorder = Recorder(
            sessionmaker,
            hooks=[],
            counter=hooks,
            clock=clock,
            journal=OutcomeJournal(Path(journal)),
            leases=leases,
            batch_size=SEND_BATCH,
            recorded=lambda _count: None,
            every_interval=_nothing,
        )
        with _counters(kept), _timed(SENDS_PER_ROUND) as timed:
            for _ in range(SENDS_PER_ROUND // SEND_BATCH):
                now = clock.now()
                for queued, _content in await claimer.claim(SEND_BATCH):
                    recorder.add(
                        Sent(queued.request_id, f"m-{queued.request_id}", now, queued.lease_token)
                    )
                await recorder.flush_before_exit()
    return timed[0]


async def _nothing() -> None:
    return None


_next_sns = 0


async def _events(sessionmaker: async_sessionmaker[AsyncSession], kept: bool) -> Round:
    """Seconds per SES Delivery event ingested, `SNS_BATCH` a transaction."""
    global _next_sns
    query = text(
        "SELECT id, recipient_key FROM email_requests "
        "WHERE topic_id = :topic AND status = 2 ORDER BY id LIMIT :count OFFSET :skip"
    )
    async with sessionmaker() as session:
        rows = list(
            await session.execute(
                query, {"topic": BIG_TOPIC, "count": EVENTS_PER_ROUND, "skip": _next_sns}
            )
        )
        if len(rows) < EVENTS_PER_ROUND:  # a small run: start again from the first
            _next_sns = 0
            rows += await session.execute(
                query, {"topic": BIG_TOPIC, "count": EVENTS_PER_ROUND - len(rows), "skip": 0}
            )
    _next_sns += EVENTS_PER_ROUND
    with _counters(kept), _timed(len(rows)) as timed:
        for start in range(0, len(rows), SNS_BATCH):
            now = datetime.now(UTC)
            batch = [
                Received(_delivery(request_id, address, now), now)
                for request_id, address in rows[start : start + SNS_BATCH]
            ]
            async with sessionmaker() as session, session.begin():
                await ingest_notifications(session, batch, soft_bounces=SOFT_BOUNCES)
    return timed[0]


def _delivery(request_id: int, address: str, now: datetime) -> SnsMessage:
    when = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": when,
            "source": "shop@example.com",
            "messageId": f"m-{request_id}",
            "destination": [address],
            "tags": {REQUEST_ID_TAG: [str(request_id)]},
        },
        "delivery": {"timestamp": when, "recipients": [address], "smtpResponse": "250 OK"},
    }
    return SnsMessage(
        type="Notification",
        message_id=f"bench-{request_id}-{now.timestamp()}",
        topic_arn="arn:aws:sns:us-east-1:123456789012:bench",
        message=json.dumps(message),
        timestamp=now,
    )


def _print(figures: Figures) -> None:
    print(
        f"{figures.backend}: {figures.requests:,} requests, {figures.events:,} events; "
        f"loaded in {figures.load_s:.0f} s, counters built in {figures.build_s:.0f} s"
    )
    for name, (p50, p95) in figures.reads_ms.items():
        print(f"  {name:28} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    for name, rates in (
        ("claim + record sends", figures.sends_per_s),
        ("SES events ingested", figures.events_per_s),
    ):
        if rates is None:
            continue
        print(
            f"  {name:28} {rates.with_per_s:8,.0f}/s with counters, "
            f"{rates.without_per_s:8,.0f}/s without ({rates.with_per_s / rates.without_per_s:.0%}"
            f" of the rate without; median of the rounds' ratios {rates.median_ratio:.0%},"
            f" of their CPU time {rates.median_cpu_ratio:.0%})"
        )


if __name__ == "__main__":
    sys.exit(main())
