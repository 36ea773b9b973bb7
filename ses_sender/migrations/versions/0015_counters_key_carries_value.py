"""stats: the counters' primary key carries their value (PostgreSQL), so a timeline reads the
index alone

A minute timeline reads some 10,000 counters that lie on as many heap pages; with `value` in
the key's index (`INCLUDE`, not a key column: the fold's `ON CONFLICT` still names the key) it
is an index-only scan. Every fold's update of a counter then writes an index entry, measured
as no slower (docs/decisions/0020-stats-counters-as-deltas.md). SQLite's `INCLUDE` does not
exist and a covering index measured no faster there: nothing changes on SQLite. The index is
rebuilt in one statement; the rows are not touched.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "scope, topic_id, domain, grain_s, bucket, metric"


def upgrade() -> None:
    _primary_key(f"({_KEY}) INCLUDE (value)")


def downgrade() -> None:
    _primary_key(f"({_KEY})")


def _primary_key(columns: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE stat_counters DROP CONSTRAINT pk_stat_counters, "
        f"ADD CONSTRAINT pk_stat_counters PRIMARY KEY {columns}"
    )
