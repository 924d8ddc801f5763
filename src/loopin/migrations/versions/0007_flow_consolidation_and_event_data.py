"""flow consolidation settings, event data

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consolidation", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("consolidation_quorum", sa.Integer(), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("data")
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.drop_column("consolidation_quorum")
        batch_op.drop_column("consolidation")
