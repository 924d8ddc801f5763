"""deadlines, fallbacks and priorities

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-03 08:20:00

Flows get a default priority, an optional deadline and a fallback; loops their priority,
deadline and the fallback that answered them; task slots a static claim rank
(``loops.queue_rank``), which replaces the claim index. Slots already waiting get the
rank of a priority-50 loop started when their loop started, so the queue keeps its order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PRIORITY_POINT_MS = 36_000  # loops.PRIORITY_POINT_MS when this migration was written
DEFAULT_PRIORITY = 50


def upgrade() -> None:
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_priority", sa.Integer(), server_default="50", nullable=False))
        batch_op.add_column(sa.Column("deadline_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fallback", sa.String(length=8), server_default="fail", nullable=False))
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="50", nullable=False))
        batch_op.add_column(sa.Column("deadline_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("fallback_info", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_loops_open_deadline",
            ["deadline_at"],
            unique=False,
            sqlite_where=sa.text("status = 'InProgress' AND deadline_at IS NOT NULL"),
            postgresql_where=sa.text("status = 'InProgress' AND deadline_at IS NOT NULL"),
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_info", sa.Text(), nullable=True))
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_rank", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(
        f"UPDATE task_slots SET queue_rank = "
        f"(SELECT created_at FROM human_loops WHERE human_loops.id = task_slots.loop_id) "
        f"- {DEFAULT_PRIORITY * PRIORITY_POINT_MS}"
    )
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_slots_available",
            sqlite_where=sa.text("status = 'available'"),
            postgresql_where=sa.text("status = 'available'"),
        )
        batch_op.create_index(
            "ix_slots_available_rank",
            ["flow_id", "queue_rank", "loop_id", "slot_index"],
            unique=False,
            sqlite_where=sa.text("status = 'available'"),
            postgresql_where=sa.text("status = 'available'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_slots_available_rank",
            sqlite_where=sa.text("status = 'available'"),
            postgresql_where=sa.text("status = 'available'"),
        )
        batch_op.create_index(
            "ix_slots_available",
            ["flow_id", "loop_id", "slot_index"],
            unique=False,
            sqlite_where=sa.text("status = 'available'"),
            postgresql_where=sa.text("status = 'available'"),
        )
        batch_op.drop_column("queue_rank")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("fallback_info")
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_loops_open_deadline",
            sqlite_where=sa.text("status = 'InProgress' AND deadline_at IS NOT NULL"),
            postgresql_where=sa.text("status = 'InProgress' AND deadline_at IS NOT NULL"),
        )
        batch_op.drop_column("fallback_info")
        batch_op.drop_column("deadline_at")
        batch_op.drop_column("priority")
    with op.batch_alter_table("flow_definitions", schema=None) as batch_op:
        batch_op.drop_column("fallback")
        batch_op.drop_column("deadline_s")
        batch_op.drop_column("default_priority")
