"""procedures.code_key: codes that differ only in case are one code

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Every version gets the key of its code (engine.codes.code_key: the code
casefolded, computed in Python so that SQLite and PostgreSQL agree), and a
unique index on (code_key, version) replaces the old (code, version) one in
meaning (that one stays; it is implied).

Rows stored before this rule under a spelling that equals an earlier one
ignoring case (``XSS-2`` then ``xss-2``) are neither dropped nor merged,
and the index must still be built over them: the first spelling stored
(lowest id) keeps the plain key, each later spelling gets ``=`` and its
exact spelling as key (engine.codes.EXACT), which no code's key can equal,
so the unique index holds on any data. Such rows are reached by their exact
spelling only; ``tinhgon db upgrade`` names each of them, and each stored
code that breaks the code rule, at every run until they are dealt with.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.codes import code_key, exact_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a default for the rows already there, replaced just below; the model declares it too
    with op.batch_alter_table("procedures") as batch:
        batch.add_column(sa.Column("code_key", sa.String(length=101), nullable=False, server_default=""))
    connection = op.get_bind()
    procedures = sa.table(
        "procedures", sa.column("id", sa.Integer), sa.column("code", sa.String), sa.column("code_key", sa.String)
    )
    first: dict[str, str] = {}
    for row_id, code in connection.execute(sa.select(procedures.c.id, procedures.c.code).order_by(procedures.c.id)):
        spelling = first.setdefault(code_key(code), code)
        key = code_key(code) if spelling == code else exact_key(code)
        connection.execute(procedures.update().where(procedures.c.id == row_id).values(code_key=key))
    with op.batch_alter_table("procedures") as batch:
        batch.create_index("uq_procedures_code_key_version", ["code_key", "version"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("procedures") as batch:
        batch.drop_index("uq_procedures_code_key_version")
        batch.drop_column("code_key")
