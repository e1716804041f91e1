"""backups: a copy made by ``tinhgon db backup`` records in itself that it is one

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

The table stays empty in a live database; ``db backup`` writes one row into
the copy (when it was taken, and from which database), which the audit's
verification reads to recognise a restored backup.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )


def downgrade() -> None:
    op.drop_table("backups")
