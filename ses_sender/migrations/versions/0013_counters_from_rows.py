"""stats: what the counters need of a request's events kept on its row, and the counters built
again, in SQL, from the rows

Requests keep which event types they have had, their first open and click of any source, and
how many of our own opens and clicks a machine made (stats/counters.py): counting a change then
reads no event. The columns are filled from the event log, and every counter (and pending
delta) is replaced by a build from the rows by the counters' rules compiled to SQL aggregates
(stats/build.py): one statement per step, whatever the number of requests. A pending delta of
a topic's domains is one row, the changes by domain in `domains`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import UtcDateTime
from ses_sender.stats import build

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_requests") as batch:
        batch.add_column(sa.Column("event_types", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("opened_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("clicked_at", UtcDateTime(), nullable=True))
        batch.add_column(
            sa.Column("machine_open_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("machine_click_count", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("stat_deltas") as batch:
        batch.add_column(sa.Column("domains", sa.Text(), nullable=True))
    connection = op.get_bind()
    connection.execute(build.backfill_statement())
    for statement in build.rebuild_statements(connection.dialect.name):
        connection.execute(statement)


def downgrade() -> None:
    # Deltas of domains packed in one row mean nothing without the column: lost (a rebuild of
    # the counters, by upgrading again, makes them exact).
    op.execute(sa.text("DELETE FROM stat_deltas WHERE domains IS NOT NULL"))
    with op.batch_alter_table("stat_deltas") as batch:
        batch.drop_column("domains")
    with op.batch_alter_table("email_requests") as batch:
        batch.drop_column("machine_click_count")
        batch.drop_column("machine_open_count")
        batch.drop_column("clicked_at")
        batch.drop_column("opened_at")
        batch.drop_column("event_types")
