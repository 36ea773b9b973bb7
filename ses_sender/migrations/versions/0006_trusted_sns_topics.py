"""the SNS topics whose messages count, and the waiting-events index in listing order

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("request_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "sns_topics",
        sa.Column("arn", sa.String(length=320), nullable=False),
        sa.Column("recorded_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("arn", name=op.f("pk_sns_topics")),
    )
    _replace_waiting_index(["created_at", "id"])


def downgrade() -> None:
    _replace_waiting_index(["created_at"])
    op.drop_table("sns_topics")


def _replace_waiting_index(columns: list[str]) -> None:
    op.drop_index("ix_email_results_waiting", table_name="email_results")
    op.create_index(
        "ix_email_results_waiting",
        "email_results",
        columns,
        unique=False,
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )
