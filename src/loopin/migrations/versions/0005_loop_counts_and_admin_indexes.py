"""pre-aggregated loop and invocation counts; indexes for the admin console

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 03:00:00

The counts of loops and predictions already stored are filled in here, so that an
upgraded server's overview is right from its first request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def upgrade() -> None:
    op.create_table(
        "loop_status_counts",
        sa.Column("flow_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("flow_id", "status", "shard"),
    )
    op.create_table(
        "loop_day_counts",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "flow_id", "status", "shard"),
    )
    op.create_table(
        "invocation_hour_counts",
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("endpoint_name", sa.String(length=63), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("routed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "endpoint_name", "shard"),
    )
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.create_index("ix_loops_status_created", ["status", "created_at", "id"], unique=False)
        batch_op.create_index("ix_loops_flow_status_created", ["flow_id", "status", "created_at", "id"], unique=False)
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_slots_submitted",
            ["submitted_at"],
            unique=False,
            sqlite_where=sa.text("status = 'submitted'"),
            postgresql_where=sa.text("status = 'submitted'"),
        )
    op.execute(
        "INSERT INTO loop_status_counts (flow_id, status, shard, n) "
        "SELECT flow_id, status, 0, count(*) FROM human_loops GROUP BY flow_id, status"
    )
    op.execute(
        f"INSERT INTO loop_day_counts (day, flow_id, status, shard, n) "
        f"SELECT created_at / {DAY_MS}, flow_id, status, 0, count(*) FROM human_loops "
        f"GROUP BY created_at / {DAY_MS}, flow_id, status"
    )
    op.execute(
        f"INSERT INTO invocation_hour_counts (hour, endpoint_name, shard, total, routed) "
        f"SELECT created_at / {HOUR_MS}, endpoint_name, 0, count(*), "
        f"sum(CASE WHEN routed_reason IS NULL THEN 0 ELSE 1 END) FROM predictions "
        f"GROUP BY created_at / {HOUR_MS}, endpoint_name"
    )


def downgrade() -> None:
    with op.batch_alter_table("task_slots", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_slots_submitted",
            sqlite_where=sa.text("status = 'submitted'"),
            postgresql_where=sa.text("status = 'submitted'"),
        )
    with op.batch_alter_table("human_loops", schema=None) as batch_op:
        batch_op.drop_index("ix_loops_flow_status_created")
        batch_op.drop_index("ix_loops_status_created")
    op.drop_table("invocation_hour_counts")
    op.drop_table("loop_day_counts")
    op.drop_table("loop_status_counts")
