"""contents: templating, sender, reply-to, headers, tags, text and attachments; requests: their
own template data; stored templates and their versions

Every new column is nullable or has a default, so existing contents keep meaning what they
meant: not templated, from EMAIL_SENDER, with no extras.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ses_sender.db.base import BigId, UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONTENT_COLUMNS: tuple[sa.Column[object], ...] = (
    sa.Column("text", sa.Text(), nullable=True),
    sa.Column("templated", sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column("data", sa.Text(), nullable=True),
    sa.Column("sender", sa.String(length=998), nullable=True),
    sa.Column("reply_to", sa.Text(), nullable=True),
    sa.Column("headers", sa.Text(), nullable=True),
    sa.Column("tags", sa.Text(), nullable=True),
    sa.Column("template_id", sa.BigInteger(), nullable=True),
    sa.Column("template_version", sa.Integer(), nullable=True),
)


def upgrade() -> None:
    # Plain ALTERs, which SQLite takes in place: no copy of the tables.
    for column in _CONTENT_COLUMNS:
        op.add_column("email_contents", column)
    op.add_column("email_requests", sa.Column("data", sa.Text(), nullable=True))
    op.create_table(
        "email_attachments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("content_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("inline_id", sa.String(length=255), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["email_contents.id"],
            name=op.f("fk_email_attachments_content_id_email_contents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_attachments")),
    )
    op.create_index(op.f("ix_email_attachments_content_id"), "email_attachments", ["content_id"])
    op.create_table(
        "templates",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    op.create_table(
        "template_versions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("template_id", BigId, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_template_versions_template_id_version")
        ),
    )
    op.create_index(op.f("ix_template_versions_template_id"), "template_versions", ["template_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_template_versions_template_id"), table_name="template_versions")
    op.drop_table("template_versions")
    op.drop_table("templates")
    op.drop_index(op.f("ix_email_attachments_content_id"), table_name="email_attachments")
    op.drop_table("email_attachments")
    with op.batch_alter_table("email_requests") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("email_contents") as batch:
        for column in reversed(_CONTENT_COLUMNS):
            batch.drop_column(column.name)
