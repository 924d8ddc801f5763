"""generations: a number per kind of cached row ("flows"), drawn anew by each change

Revision ID: 0018_generations
Revises: 0017_adaptive_reviewers
Create Date: 2026-12-03 15:20:00
"""

import random

import sqlalchemy as sa
from alembic import op

revision = "0018_generations"
down_revision = "0017_adaptive_reviewers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "generations",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"name": "flows", "value": random.getrandbits(62)}])


def downgrade() -> None:
    op.drop_table("generations")
