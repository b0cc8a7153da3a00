"""Cluster digests: each collection's clusters and memberships, and digest subscriptions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model_key", sa.String(80), primary_key=True),
        sa.Column("cluster_id", sa.Integer, primary_key=True),
        sa.Column("centroid", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "cluster_members",
        sa.Column(
            "token_pk",
            sa.Integer,
            sa.ForeignKey("tokens.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model_key", sa.String(80), primary_key=True),
        sa.Column("cluster_id", sa.Integer, nullable=False),
    )
    op.create_table(
        "digest_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_posted_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("target", "collection_id", name="uq_digest_subscription"),
    )


def downgrade() -> None:
    op.drop_table("digest_subscriptions")
    op.drop_table("cluster_members")
    op.drop_table("clusters")
