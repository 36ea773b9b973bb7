"""stats: counters kept where the facts change (folded counts, pending deltas, the topic list),
built here for the requests and events that exist

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import BigId, UtcDateTime
from ses_sender.stats.counters import CounterKey, contribution, facts_of, spread_over_grains

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5_000  # requests read at a time

requests = sa.table(
    "email_requests",
    sa.column("id", sa.BigInteger),
    sa.column("topic_id", sa.String),
    sa.column("recipient_key", sa.String),
    sa.column("status", sa.SmallInteger),
    sa.column("stop_reason", sa.SmallInteger),
    sa.column("outcome", sa.SmallInteger),
    sa.column("sent_at", UtcDateTime()),
    sa.column("updated_at", UtcDateTime()),
    sa.column("delivered_at", UtcDateTime()),
    sa.column("bounced_at", UtcDateTime()),
    sa.column("complained_at", UtcDateTime()),
    sa.column("unsubscribed_at", UtcDateTime()),
    sa.column("created_at", UtcDateTime()),
)
results = sa.table(
    "email_results",
    sa.column("request_id", sa.BigInteger),
    sa.column("status", sa.String),
    sa.column("occurred_at", UtcDateTime()),
)


def upgrade() -> None:
    counters = op.create_table(
        "stat_counters",
        sa.Column("scope", sa.SmallInteger(), nullable=False),
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=320), nullable=False),
        sa.Column("grain_s", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "topic_id", "domain", "grain_s", "bucket", "metric", name="pk_stat_counters"
        ),
    )
    op.create_table(
        "stat_deltas",
        sa.Column("id", BigId, nullable=False),
        sa.Column("scope", sa.SmallInteger(), nullable=False),
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=320), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stat_deltas"),
    )
    op.create_index(
        "ix_stat_deltas_scope_topic", "stat_deltas", ["scope", "topic_id", "bucket"], unique=False
    )
    topics = op.create_table(
        "stat_topics",
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("topic_id", name="pk_stat_topics"),
    )
    op.create_index("ix_stat_topics_newest", "stat_topics", ["created_at", "topic_id"])
    connection = op.get_bind()
    connection.execute(
        topics.insert().from_select(
            ["topic_id", "created_at"],
            sa.select(requests.c.topic_id, sa.func.min(requests.c.created_at)).group_by(
                requests.c.topic_id
            ),
        )
    )
    built = spread_over_grains(_recount(connection))
    rows = [
        {
            "scope": scope,
            "topic_id": topic_id,
            "domain": domain,
            "grain_s": grain_s,
            "bucket": bucket,
            "metric": metric,
            "value": value,
        }
        for ((scope, topic_id, domain, bucket, metric), grain_s), value in built.items()
        if value
    ]
    for start in range(0, len(rows), CHUNK):
        connection.execute(counters.insert(), rows[start : start + CHUNK])


def _recount(connection: sa.Connection) -> dict[CounterKey, int]:
    """What every request contributes, summed: the counters by minute, as the service keeps
    them."""
    total: Counter[CounterKey] = Counter()
    after = 0
    while True:
        rows = connection.execute(
            sa.select(
                requests.c.id,
                requests.c.topic_id,
                requests.c.recipient_key,
                requests.c.status,
                requests.c.stop_reason,
                requests.c.outcome,
                requests.c.sent_at,
                requests.c.updated_at,
                requests.c.delivered_at,
                requests.c.bounced_at,
                requests.c.complained_at,
                requests.c.unsubscribed_at,
            )
            .where(requests.c.id > after)
            .order_by(requests.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return dict(total)
        events: defaultdict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for request_id, status, occurred_at in connection.execute(
            sa.select(results.c.request_id, results.c.status, results.c.occurred_at).where(
                results.c.request_id.in_([row[0] for row in rows])
            )
        ):
            events[request_id].append((status, occurred_at))
        for row in rows:
            total.update(contribution(facts_of(row, events[row[0]])))
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_stat_topics_newest", table_name="stat_topics")
    op.drop_table("stat_topics")
    op.drop_index("ix_stat_deltas_scope_topic", table_name="stat_deltas")
    op.drop_table("stat_deltas")
    op.drop_table("stat_counters")
