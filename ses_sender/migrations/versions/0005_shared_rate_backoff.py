"""the shared rate's back-off after throttles and its shift for late sends

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 18:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shifted", sa.Double(), server_default="0.0", nullable=False))
        batch_op.add_column(
            sa.Column("backoff_level", sa.Double(), server_default="1.0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("backoff_since", sa.Double(), server_default="0.0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.drop_column("backoff_since")
        batch_op.drop_column("backoff_level")
        batch_op.drop_column("shifted")
