"""Alembic environment: migrations run on the connection that
:func:`engine.schema.upgrade` hands over, inside its transaction."""

from __future__ import annotations

from alembic import context

from engine.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - tinhgon always passes its connection
    raise RuntimeError("run migrations through `tinhgon db upgrade`, which passes the database connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
