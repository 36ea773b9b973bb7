"""sending engine and feedback loop tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 15:21:14.200547
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ses_sender.db.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_free_at", sa.Double(), nullable=False),
        sa.Column("updated_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_limits")),
    )
    op.create_table(
        "sending_pauses",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sending_pauses")),
    )
    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_suppressions")),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suppressions_reason"), ["reason"], unique=False)

    op.create_table(
        "topic_pauses",
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("paused_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic_id", name=op.f("pk_topic_pauses")),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("events", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "webhook_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_claim", ["status", "due_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_webhook_id"), ["webhook_id"], unique=False
        )

    # Rows from before this column keep their address as it was given; new rows are normalised.
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_key", sa.String(length=320), nullable=True))
    op.execute('UPDATE email_requests SET recipient_key = lower("to")')
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.alter_column("recipient_key", existing_type=sa.String(length=320), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_email_requests_recipient_key"), ["recipient_key"], unique=False
        )

    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_results_recipient", ["recipient", "status", "occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.drop_index("ix_email_results_recipient")

    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_requests_recipient_key"))
        batch_op.drop_column("recipient_key")

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_webhook_id"))
        batch_op.drop_index("ix_webhook_deliveries_claim")

    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("topic_pauses")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppressions_reason"))

    op.drop_table("suppressions")
    op.drop_table("sending_pauses")
    op.drop_table("rate_limits")
