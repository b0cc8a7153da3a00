"""The first schema: collections, tokens, attributes, sales and embeddings.

Exactly what version 0.1 created with ``create_all``; databases made by it have no
``alembic_version`` table and are stamped at this revision before upgrading.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("chain", sa.String(40), nullable=False),
        sa.Column("contract", sa.String(100)),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("marketplace", sa.String(40), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("image_path", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("attributes_json", sa.Text, nullable=False),
        sa.UniqueConstraint("collection_id", "token_id", name="uq_token"),
    )
    op.create_table(
        "attributes",
        sa.Column(
            "token_pk",
            sa.Integer,
            sa.ForeignKey("tokens.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("trait_type", sa.String(100), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.create_index("ix_attributes_trait_type", "attributes", ["trait_type"])
    op.create_table(
        "sales",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_id", sa.String(100), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("tx", sa.String(100), nullable=False),
        sa.Column("seller", sa.String(100)),
        sa.Column("buyer", sa.String(100)),
        sa.Column("marketplace", sa.String(40)),
        sa.UniqueConstraint("collection_id", "tx", "token_id", name="uq_sale"),
    )
    op.create_index("ix_sales_token_id", "sales", ["token_id"])
    op.create_index("ix_sales_timestamp", "sales", ["timestamp"])
    op.create_table(
        "embeddings",
        sa.Column(
            "token_pk",
            sa.Integer,
            sa.ForeignKey("tokens.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model_key", sa.String(80), primary_key=True),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("embeddings", "sales", "attributes", "tokens", "collections"):
        op.drop_table(table)
