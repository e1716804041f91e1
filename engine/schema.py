"""Creating and upgrading the database schema with Alembic.

Every command that needs the database calls :func:`upgrade` first, and
several workers may start at once: on PostgreSQL the upgrade holds an
advisory lock for its transaction, on SQLite ``BEGIN IMMEDIATE`` queues the
writers, so the migrations run once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from procedures.messages import t

from .errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x7467_6E01  # any constant, the same in every process


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest migration's revision."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision; returns it.

    Raises:
        DatabaseUnavailable: the database is at a revision this tinhgon
            does not know (a newer tinhgon wrote it, or another program).
    """
    config = _config()
    with engine.connect().execution_options(tinhgon_write=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        _known(connection, engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head()


def _known(connection: Connection, engine: Engine) -> None:
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(_config()).get_revision(revision)
    except CommandError:
        shown = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(
            t(
                "the database {database} is at schema revision «{revision}», which this tinhgon does not know"
                " (its newest is «{newest}»): a newer tinhgon wrote it, or it is not tinhgon's; nothing was changed",
                database=shown,
                revision=revision,
                newest=head(),
            )
        ) from None
