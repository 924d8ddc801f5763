"""flows: A2I's built-in task types (request source and activation conditions)

Revision ID: 0016_flow_request_source
Revises: 0015_batch_executors
Create Date: 2026-12-03 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_flow_request_source"
down_revision = "0015_batch_executors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions") as table:
        table.add_column(sa.Column("request_source", sa.String(64), nullable=True))
        table.add_column(sa.Column("activation_conditions", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_definitions") as table:
        table.drop_column("activation_conditions")
        table.drop_column("request_source")
