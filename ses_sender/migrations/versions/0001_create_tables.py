"""create tables

Revision ID: 0001
Revises:
Create Date: 2026-11-29 14:56:53.494173
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ses_sender.db.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    op.create_table(
        "email_contents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_contents")),
    )
    with op.batch_alter_table("email_contents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_contents_topic_id"), ["topic_id"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "email_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic_id", sa.String(length=255), nullable=False),
        sa.Column("to", sa.String(length=998), nullable=False),
        sa.Column(
            "content_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("scheduled_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("due_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("bounced_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("bounce_type", sa.String(length=64), nullable=True),
        sa.Column("complained_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("complaint_type", sa.String(length=64), nullable=True),
        sa.Column("rejected_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("delayed_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_opened_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.Column("first_clicked_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("click_count", sa.Integer(), nullable=False),
        sa.Column("unsubscribed_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["email_contents.id"],
            name=op.f("fk_email_requests_content_id_email_contents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_requests")),
    )
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.create_index("ix_email_requests_claim", ["status", "due_at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_email_requests_content_id"), ["content_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_requests_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_email_requests_sent_at"), ["sent_at"], unique=False)
        batch_op.create_index(
            "ix_email_requests_topic_status", ["topic_id", "status"], unique=False
        )

    op.create_table(
        "email_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sns_message_id", sa.String(length=255), nullable=True),
        sa.Column("ses_message_id", sa.String(length=255), nullable=True),
        sa.Column("recipient", sa.String(length=998), nullable=True),
        sa.Column("occurred_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", ses_sender.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["email_requests.id"],
            name=op.f("fk_email_results_request_id_email_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_results")),
        sa.UniqueConstraint("sns_message_id", name=op.f("uq_email_results_sns_message_id")),
    )
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_results_request_status", ["request_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_results_ses_message_id"), ["ses_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_results_ses_message_id"))
        batch_op.drop_index("ix_email_results_request_status")

    op.drop_table("email_results")
    with op.batch_alter_table("email_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_email_requests_topic_status")
        batch_op.drop_index(batch_op.f("ix_email_requests_sent_at"))
        batch_op.drop_index(batch_op.f("ix_email_requests_message_id"))
        batch_op.drop_index(batch_op.f("ix_email_requests_content_id"))
        batch_op.drop_index("ix_email_requests_claim")

    op.drop_table("email_requests")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("email_contents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_contents_topic_id"))

    op.drop_table("email_contents")
    op.drop_table("app_secrets")
