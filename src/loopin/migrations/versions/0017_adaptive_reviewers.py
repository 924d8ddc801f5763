"""adaptive reviewers: per-flow switch and agreement limits, per-loop record

Revision ID: 0017_adaptive_reviewers
Revises: 0016_flow_request_source
Create Date: 2026-12-03 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_adaptive_reviewers"
down_revision = "0016_flow_request_source"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions") as table:
        table.add_column(sa.Column("adaptive", sa.Boolean(), nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("adaptive_model_agreement", sa.Double(), nullable=True))
        table.add_column(sa.Column("adaptive_worker_agreement", sa.Double(), nullable=True))
    with op.batch_alter_table("human_loops") as table:
        table.add_column(sa.Column("adaptive_info", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("human_loops") as table:
        table.drop_column("adaptive_info")
    with op.batch_alter_table("flow_definitions") as table:
        table.drop_column("adaptive_worker_agreement")
        table.drop_column("adaptive_model_agreement")
        table.drop_column("adaptive")
