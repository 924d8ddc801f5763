"""batch jobs and their per-image checkpoints

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03 08:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "batch_jobs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("endpoint_name", sa.String(63), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_uri", sa.String(1024), nullable=False),
        sa.Column("output_uri", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_batch_jobs_status", "batch_jobs", ["status", "lease_expires_at"])
    op.create_table(
        "batch_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", BigId, sa.ForeignKey("batch_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prediction_id", sa.BigInteger(), nullable=True),
        sa.Column("loop_name", sa.String(63), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("job_id", "seq"),
    )
    op.create_index("ix_batch_items_job_status", "batch_items", ["job_id", "status", "seq"])


def downgrade() -> None:
    op.drop_index("ix_batch_items_job_status", table_name="batch_items")
    op.drop_table("batch_items")
    op.drop_index("ix_batch_jobs_status", table_name="batch_jobs")
    op.drop_table("batch_jobs")
