"""How many tokens a clustering was fitted on, so growth since the fit can trigger a new one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for clusterings made before: they are judged by their members, as then, until
    # their next full re-clustering records the size.
    op.add_column("clusters", sa.Column("fitted_tokens", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("fitted_tokens")
