"""flow definitions: extra origins their task frames may load from

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frame_origins", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.drop_column("frame_origins")
