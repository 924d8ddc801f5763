"""batch jobs: the executor that runs the model (local or a Ray cluster) and its address

Revision ID: 0015_batch_executors
Revises: 0014_gold
Create Date: 2026-12-03 11:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_batch_executors"
down_revision = "0014_gold"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_jobs") as table:
        table.add_column(sa.Column("executor", sa.String(16), nullable=False, server_default="local"))
        table.add_column(sa.Column("executor_address", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_jobs") as table:
        table.drop_column("executor_address")
        table.drop_column("executor")
