"""sign-in failures in the database, shared by every server process; flows' input locations; session generations

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_sign_in_failures_key_at", "sign_in_failures", ["key", "at_ms"])
    op.create_index("ix_sign_in_failures_at", "sign_in_failures", ["at_ms"])
    with op.batch_alter_table("flow_definitions") as batch_op:
        batch_op.add_column(sa.Column("input_locations", sa.Text(), nullable=True))
    for table in ("workers", "admins"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
            if table == "workers":
                batch_op.add_column(sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("workers", "admins"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("session_generation")
            if table == "workers":
                batch_op.drop_column("token_generation")
    with op.batch_alter_table("flow_definitions") as batch_op:
        batch_op.drop_column("input_locations")
    op.drop_index("ix_sign_in_failures_at", table_name="sign_in_failures")
    op.drop_index("ix_sign_in_failures_key_at", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
