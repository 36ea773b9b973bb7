"""stats: counters per link (scope LINK), the counters' `domain` holding a link's URL as text

`GET /v1/topics/{topicId}/links` read the topic's clicks; it now reads counters kept per topic
and link URL, as the domains' are (docs/decisions/0020-stats-counters-as-deltas.md). A URL is
longer than a domain: the counters' `domain` (VARCHAR(320) on both databases) becomes TEXT; a
URL kept as a key is capped at `counters.MAX_LINK_BYTES`. On PostgreSQL VARCHAR to TEXT
rewrites neither the table nor its key; SQLite copies the table. The links' counters are built
from our own clicks in the event log, in SQL (`stats.build.link_statements`).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from alembic import op

from ses_sender.models import CounterScope, StatCounter, StatDelta
from ses_sender.stats import build

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stat_counters") as batch:
        batch.alter_column(
            "domain", type_=sa.Text(), existing_type=sa.String(320), existing_nullable=False
        )
    connection = op.get_bind()
    for statement in build.link_statements(
        connection.dialect.name, cast(sa.Table, StatCounter.__table__)
    ):
        connection.execute(statement)


def downgrade() -> None:
    # The links' counters (and their pending deltas) mean nothing to the code before: dropped;
    # upgrading again builds them anew from the clicks.
    for model in (StatCounter, StatDelta):
        table = cast(sa.Table, model.__table__)
        op.execute(table.delete().where(table.c.scope == int(CounterScope.LINK)))
    with op.batch_alter_table("stat_counters") as batch:
        batch.alter_column(
            "domain", type_=sa.String(320), existing_type=sa.Text(), existing_nullable=False
        )
