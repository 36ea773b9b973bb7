"""events per recipient and the request outcome

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:12:40.118305
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ses_sender.models.Outcome at the time of writing; a migration never imports the app.
_BACKFILL_OUTCOME = """
UPDATE email_requests SET outcome = CASE
    WHEN complained_at IS NOT NULL THEN 60
    WHEN bounced_at IS NOT NULL AND bounce_type LIKE 'Permanent%' THEN 50
    WHEN rejected_at IS NOT NULL THEN 40
    WHEN bounced_at IS NOT NULL THEN 30
    WHEN delivered_at IS NOT NULL THEN 20
    WHEN delayed_at IS NOT NULL THEN 10
END
WHERE complained_at IS NOT NULL OR bounced_at IS NOT NULL OR rejected_at IS NOT NULL
    OR delivered_at IS NOT NULL OR delayed_at IS NOT NULL
"""


def upgrade() -> None:
    # Every row so far is one SNS message, so the old rows are unique under the new key too.
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_email_results_sns_message_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_email_results_sns_message_id_recipient"),
            ["sns_message_id", "recipient"],
        )

    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.SmallInteger(), nullable=True))
    op.execute(_BACKFILL_OUTCOME)


def downgrade() -> None:
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.drop_column("outcome")

    # Keeps one row per SNS message (the first) so the old key can hold again.
    op.execute(
        "DELETE FROM email_results WHERE sns_message_id IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM email_results WHERE sns_message_id IS NOT NULL "
        "GROUP BY sns_message_id)"
    )
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_email_results_sns_message_id_recipient"), type_="unique"
        )
        batch_op.create_unique_constraint("uq_email_results_sns_message_id", ["sns_message_id"])
