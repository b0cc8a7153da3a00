"""Marketplace sync: followed collections and their checkpoints, and failed-token back-off.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _collection_key() -> sa.Column:
    return sa.Column(
        "collection_id",
        sa.Integer,
        sa.ForeignKey("collections.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "sync_state",
        _collection_key(),
        sa.Column("following", sa.Boolean, nullable=False),
        sa.Column("every_minutes", sa.Float),
        sa.Column("checkpoint", sa.DateTime(timezone=True)),
        sa.Column("resume_before", sa.DateTime(timezone=True)),
        sa.Column("resume_until", sa.DateTime(timezone=True)),
        sa.Column("last_started_at", sa.DateTime(timezone=True)),
        sa.Column("last_finished_at", sa.DateTime(timezone=True)),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_summary", sa.Text),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "token_failures",
        _collection_key(),
        sa.Column("token_id", sa.String(100), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("token_failures")
    op.drop_table("sync_state")
