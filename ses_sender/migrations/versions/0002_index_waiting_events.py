"""index waiting events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:10:46.715013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_results_waiting",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text("request_id IS NULL"),
            sqlite_where=sa.text("request_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_email_results_waiting",
            postgresql_where=sa.text("request_id IS NULL"),
            sqlite_where=sa.text("request_id IS NULL"),
        )
