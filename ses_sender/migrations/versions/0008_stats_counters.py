"""stats: counters kept where the facts change (folded counts, pending deltas, the topic list)

The counters of the requests and events that exist are built by 0013, in SQL: this built them
in Python, request by request (hours at ten million), by a definition that has changed since.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import BigId, UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

requests = sa.table(
    "email_requests",
    sa.column("topic_id", sa.String),
    sa.column("created_at", UtcDateTime()),
)


def upgrade() -> None:
    op.create_table(
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


def downgrade() -> None:
    op.drop_index("ix_stat_topics_newest", table_name="stat_topics")
    op.drop_table("stat_topics")
    op.drop_index("ix_stat_deltas_scope_topic", table_name="stat_deltas")
    op.drop_table("stat_deltas")
    op.drop_table("stat_counters")
