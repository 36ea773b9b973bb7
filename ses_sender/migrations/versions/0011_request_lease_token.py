"""requests: a lease token, so a worker records only the rows it still holds

Each claim gives its rows a new random token; a worker's writes about a row match its token, so
a row claimed again by someone else after a lease ran out is never overwritten by the worker
that lost it. Rows claimed before this change have none: their worker's lease runs out and
they are recovered as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_requests", sa.Column("lease_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_requests") as batch:
        batch.drop_column("lease_token")
