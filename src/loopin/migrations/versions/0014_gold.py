"""gold items, gold tasks, gold settings and worker pauses

Revision ID: 0014_gold
Revises: 0013_escalation
Create Date: 2026-12-03 11:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_gold"
down_revision = "0013_escalation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gold_settings",
        sa.Column("flow_id", BigId, sa.ForeignKey("flow_definitions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rate", sa.Double(), nullable=False),
        sa.Column("min_accuracy", sa.Double(), nullable=True),
        sa.Column("min_scored", sa.Integer(), nullable=False),
    )
    op.create_table(
        "gold_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("flow_id", BigId, sa.ForeignKey("flow_definitions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("input_content", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("note", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_gold_items_flow", "gold_items", ["flow_id", "id"])
    op.create_table(
        "gold_tasks",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("gold_item_id", BigId, sa.ForeignKey("gold_items.id", ondelete="SET NULL"), nullable=True),
        sa.Column("flow_id", BigId, sa.ForeignKey("flow_definitions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("worker_id", BigId, sa.ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", sa.BigInteger(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.UniqueConstraint("gold_item_id", "worker_id"),
    )
    op.create_index("ix_gold_tasks_worker_flow", "gold_tasks", ["worker_id", "flow_id", "status"])
    op.create_index("ix_gold_tasks_flow_submitted", "gold_tasks", ["flow_id", "submitted_at"])
    op.create_table(
        "worker_pauses",
        sa.Column("flow_id", BigId, sa.ForeignKey("flow_definitions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("worker_id", BigId, sa.ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("paused_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("cleared_at", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker_pauses")
    op.drop_index("ix_gold_tasks_flow_submitted", table_name="gold_tasks")
    op.drop_index("ix_gold_tasks_worker_flow", table_name="gold_tasks")
    op.drop_table("gold_tasks")
    op.drop_index("ix_gold_items_flow", table_name="gold_items")
    op.drop_table("gold_items")
    op.drop_table("gold_settings")
