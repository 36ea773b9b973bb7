"""the raw SES event stored once per SNS message, not once per recipient

Each SNS message's payload moves from every event row it made (one per recipient it names,
each with the whole message) to one row of `event_payloads`, keyed by the SNS message id; the
event rows keep the summary. Set-based, in one statement each way.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every row of one SNS message holds the same payload: the first row's is taken, with the time
# the message was received.
_MOVE_PAYLOADS = """
INSERT INTO event_payloads (sns_message_id, raw, received_at)
SELECT sns_message_id, raw, created_at FROM email_results
WHERE id IN (
    SELECT min(id) FROM email_results WHERE sns_message_id IS NOT NULL GROUP BY sns_message_id
)
"""
# A payload pruned meanwhile comes back as the empty object the old schema stored for events
# without one (our own opens, clicks and unsubscribes).
_COPY_PAYLOADS_BACK = """
UPDATE email_results SET raw = (
    SELECT event_payloads.raw FROM event_payloads
    WHERE event_payloads.sns_message_id = email_results.sns_message_id
)
WHERE sns_message_id IN (SELECT sns_message_id FROM event_payloads)
"""


def upgrade() -> None:
    op.create_table(
        "event_payloads",
        sa.Column("sns_message_id", sa.String(length=255), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sns_message_id", name=op.f("pk_event_payloads")),
    )
    op.create_index(
        op.f("ix_event_payloads_received_at"), "event_payloads", ["received_at"], unique=False
    )
    op.execute(_MOVE_PAYLOADS)
    with op.batch_alter_table("email_results") as batch:
        batch.drop_column("raw")


def downgrade() -> None:
    with op.batch_alter_table("email_results") as batch:
        batch.add_column(sa.Column("raw", sa.Text(), nullable=False, server_default="{}"))
    op.execute(_COPY_PAYLOADS_BACK)
    with op.batch_alter_table("email_results") as batch:
        batch.alter_column("raw", server_default=None)
    op.drop_index(op.f("ix_event_payloads_received_at"), table_name="event_payloads")
    op.drop_table("event_payloads")
