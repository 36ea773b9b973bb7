"""click tracking, and opens and clicks told apart from machines

Contents say whether their links are tracked (NULL: as TRACK_CLICKS says). Events of our own
tracking carry the link's URL and whether a person or a machine made them, with the reason.
Opens recorded before this were never classified: they are kept, marked human for want of
evidence, with the reason "unclassified".

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

results = sa.table(
    "email_results",
    sa.column("status", sa.String),
    sa.column("source", sa.String),
    sa.column("machine", sa.Boolean),
    sa.column("reason", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("email_contents") as batch:
        batch.add_column(sa.Column("track_clicks", sa.Boolean(), nullable=True))
    with op.batch_alter_table("email_results") as batch:
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("machine", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))
    op.execute(
        results.update()
        .where(results.c.source == "tracking", results.c.status.in_(("Open", "Click")))
        .values(machine=False, reason="unclassified")
    )


def downgrade() -> None:
    with op.batch_alter_table("email_results") as batch:
        batch.drop_column("reason")
        batch.drop_column("machine")
        batch.drop_column("url")
    with op.batch_alter_table("email_contents") as batch:
        batch.drop_column("track_clicks")
