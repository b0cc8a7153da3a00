"""Scheduled jobs' runs and next runs; an index for reading a collection's sales by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_job_runs_job_started", "job_runs", ["job", "started_at"])
    op.create_table(
        "job_schedule",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sales_collection_time", "sales", ["collection_id", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_sales_collection_time", table_name="sales")
    op.drop_table("job_schedule")
    op.drop_index("ix_job_runs_job_started", table_name="job_runs")
    op.drop_table("job_runs")
