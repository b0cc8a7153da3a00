"""Market data (daily floors, USD rates) and the registry of trained price models.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "floors",
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("floor", sa.Float, nullable=False),
    )
    op.create_table(
        "usd_rates",
        sa.Column("currency", sa.String(16), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("usd", sa.Float, nullable=False),
    )
    op.create_table(
        "price_models",
        sa.Column("version", sa.String(80), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("trained_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sales_used", sa.Integer, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_price_models_collection_until", "price_models", ["collection_id", "trained_until"]
    )


def downgrade() -> None:
    op.drop_index("ix_price_models_collection_until", table_name="price_models")
    op.drop_table("price_models")
    op.drop_table("usd_rates")
    op.drop_table("floors")
