"""escalation to a second team

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 11:45:00

Flows get an escalation team and time; loops the record of their escalation, its team and
its end; task slots the team they escalated to, with a claim index for that team's workers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_escalation"
down_revision = "0012"
branch_labels = None
depends_on = None

OPEN_ESCALATION = "status = 'InProgress' AND escalation_ends_at IS NOT NULL"
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ESCALATED_SLOT = "status = 'available' AND escalation_team_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_team_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("escalation_s", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_flows_escalation_team", "workteams", ["escalation_team_id"], ["id"])
        batch_op.create_index("ix_flow_definitions_escalation_team_id", ["escalation_team_id"], unique=False)
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_info", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("escalation_team_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("escalation_ends_at", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_loops_open_escalation",
            ["escalation_ends_at"],
            unique=False,
            sqlite_where=sa.text(OPEN_ESCALATION),
            postgresql_where=sa.text(OPEN_ESCALATION),
        )
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_team_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_slots_escalated_rank",
            ["escalation_team_id", "queue_rank", "loop_id", "slot_index"],
            unique=False,
            sqlite_where=sa.text(ESCALATED_SLOT),
            postgresql_where=sa.text(ESCALATED_SLOT),
        )


def downgrade() -> None:
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_slots_escalated_rank", sqlite_where=sa.text(ESCALATED_SLOT), postgresql_where=sa.text(ESCALATED_SLOT)
        )
        batch_op.drop_column("escalation_team_id")
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_loops_open_escalation", sqlite_where=sa.text(OPEN_ESCALATION), postgresql_where=sa.text(OPEN_ESCALATION)
        )
        batch_op.drop_column("escalation_ends_at")
        batch_op.drop_column("escalation_team_id")
        batch_op.drop_column("escalation_info")
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_definitions_escalation_team_id")
        batch_op.drop_constraint("fk_flows_escalation_team", type_="foreignkey")
        batch_op.drop_column("escalation_s")
        batch_op.drop_column("escalation_team_id")
