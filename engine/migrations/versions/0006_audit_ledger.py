"""audit ledger: every event signed and naming its key, the journal of users,
tokens and procedures, the database-wide ledger that seals both, the public
keys ever used, and the switch from the first audit rules

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Events written before this revision keep the rules they were written under
(only decisions signed): ``audit_rules.legacy_events`` records the highest
event id at the switch, and the first seal signs that record into the ledger.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("key_id", sa.String(length=16), nullable=True))
    op.create_table(
        "audit_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("first_used", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_audit_keys")),
    )
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
    )
    op.create_table(
        "ledger",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_ledger")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_ledger_kind_ref_id")),
    )
    rules = op.create_table(
        "audit_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legacy_events", sa.Integer(), nullable=False),
        sa.Column("switched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_rules")),
    )
    highest = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    op.bulk_insert(rules, [{"id": 1, "legacy_events": int(highest or 0), "switched_at": now}])


def downgrade() -> None:
    op.drop_table("audit_rules")
    op.drop_table("ledger")
    op.drop_table("journal")
    op.drop_table("audit_keys")
    op.drop_column("events", "key_id")
