"""procedure amendments: bodies replaced under the same version, the old one kept

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

A definition whose new body differs only in what no running case depends on
(names, labels, volumes, prices, ...) replaces the stored body as an
amendment (service.md section 4); each replacement is recorded here with the
body it replaced.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "procedure_amendments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("amended_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("old_body", sa.Text(), nullable=False),
        sa.Column("old_hash", sa.String(length=64), nullable=False),
        sa.Column("new_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"], ["procedures.id"], name=op.f("fk_procedure_amendments_procedure_id_procedures")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedure_amendments")),
    )
    op.create_index(op.f("ix_procedure_amendments_procedure_id"), "procedure_amendments", ["procedure_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_procedure_amendments_procedure_id"), table_name="procedure_amendments")
    op.drop_table("procedure_amendments")
