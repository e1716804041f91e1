"""Alembic migrations of tinhgon's database, one file per schema version,
from the first table on. Run by :func:`engine.schema.upgrade`."""
