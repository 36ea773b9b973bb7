"""requests: a lease column, a held flag and a stop reason where `due_at` and `error` did triple
and double duty

`due_at` was the next attempt's time for queued rows, the lease's end for claimed ones, and a
year-9999 sentinel for rows of a paused topic; "stopped because suppressed" was a prefix of
`error`. Each gets a column of its own, and the data is carried over.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCESSING = 1
STOPPED = 4
CANCELLED = 1
SUPPRESSED = 2
HELD_SENTINEL = datetime(9999, 1, 1, tzinfo=UTC)  # the old `due_at` of a paused topic's rows

requests = sa.table(
    "email_requests",
    sa.column("status", sa.SmallInteger),
    sa.column("due_at", UtcDateTime()),
    sa.column("scheduled_at", UtcDateTime()),
    sa.column("held", sa.Boolean),
    sa.column("lease_expires_at", UtcDateTime()),
    sa.column("error", sa.Text),
    sa.column("stop_reason", sa.SmallInteger),
)


def upgrade() -> None:
    # Plain ALTERs, which SQLite takes in place: no copy of the table.
    op.add_column(
        "email_requests", sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("email_requests", sa.Column("lease_expires_at", UtcDateTime(), nullable=True))
    op.add_column("email_requests", sa.Column("stop_reason", sa.SmallInteger(), nullable=True))
    op.drop_index("ix_email_requests_claim", table_name="email_requests")
    op.create_index("ix_email_requests_claim", "email_requests", ["status", "held", "due_at", "id"])
    op.execute(
        requests.update()
        .where(requests.c.status == PROCESSING)
        .values(lease_expires_at=requests.c.due_at)
    )
    op.execute(
        requests.update()
        .where(requests.c.due_at >= HELD_SENTINEL)
        .values(held=True, due_at=requests.c.scheduled_at)
    )
    op.execute(
        requests.update()
        .where(requests.c.status == STOPPED)
        .values(
            stop_reason=sa.case(
                (requests.c.error.like("suppressed: %"), SUPPRESSED), else_=CANCELLED
            )
        )
    )


def downgrade() -> None:
    op.execute(
        requests.update()
        .where(requests.c.status == PROCESSING)
        .values(due_at=requests.c.lease_expires_at)
    )
    op.execute(
        requests.update()
        .where(requests.c.held.is_(True))
        .values(due_at=sa.literal(HELD_SENTINEL, UtcDateTime()))
    )
    op.drop_index("ix_email_requests_claim", table_name="email_requests")
    op.create_index("ix_email_requests_claim", "email_requests", ["status", "due_at", "id"])
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("held")
