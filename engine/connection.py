"""Opening a database: SQLite or PostgreSQL, with the settings tinhgon relies on.

SQLite (the default, one machine) runs in WAL mode with foreign keys on and
a busy timeout, and a unit of work that will write starts with ``BEGIN
IMMEDIATE`` so that two writers queue instead of failing on a stale
snapshot; a new database file is created 0600. PostgreSQL is reached
through psycopg 3 (``postgresql+psycopg://...``) by the same code, its idle
connections checked before they are handed out.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError

from .errors import DatabaseUnavailable

DEFAULT_URL = "sqlite:///tinhgon.db"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below decide how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get("tinhgon_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def private_file(path: str) -> None:
    """Create the SQLite file ``path``, mode 0600, when it is not there yet:
    it holds every case's data. SQLite gives its ``-wal`` and ``-shm`` files
    the database file's mode. An existing file keeps the mode it has (the
    operator's choice); a folder that is not there is left to SQLite's own error."""
    with contextlib.suppress(FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings tinhgon relies on.

    >>> connect("sqlite://").dialect.name
    'sqlite'
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    _check_url(url)
    # An error's text never carries a statement's values (a token's hash, a
    # name): errors are logged (see engine.logsafe).
    kwargs.setdefault("hide_parameters", True)
    # Every request of a worker may hold a connection at once (the service
    # runs them in up to 40 threads): connections beyond the pool's size are
    # opened and closed per use, which under load cost more than the
    # statements did (a new PostgreSQL connection is a new server process:
    # with 16 requests at once and a pool of 10, a quarter of the actions'
    # time went to that). A SQLite connection is a file handle; PostgreSQL's
    # server defaults to 100 connections, shared by every worker, and each
    # worker holds up to 30.
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database not in (None, "", ":memory:"):  # a file; memory has a pool of its own kind
            private_file(database)
            kwargs.setdefault("pool_size", 40)
            kwargs.setdefault("max_overflow", 10)
            # The connection used last comes back first: each connection
            # keeps a page cache that another's commit makes stale, and the
            # writes (one after another, mostly from one thread) then keep
            # finding their pages cached instead of reading them again.
            kwargs.setdefault("pool_use_lifo", True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    ping_idle = "pool_pre_ping" not in kwargs
    engine = create_engine(url, **kwargs)
    if ping_idle:
        _ping_when_idle(engine)
    return engine


UNIQUE_VIOLATION = "23505"
"""PostgreSQL's SQLSTATE for a duplicate key"""


def duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver's error, or SQLAlchemy's around one) is a
    duplicate key: another transaction stored the same key first."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) == UNIQUE_VIOLATION:
        return True
    return isinstance(orig, sqlite3.IntegrityError) and str(orig).startswith("UNIQUE constraint failed")


URL_FORMS = "sqlite:///FILE or postgresql+psycopg://USER@HOST[:PORT]/DATABASE"


def shown_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _check_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(f"the database URL given cannot be read as a URL; use {URL_FORMS}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if (backend, driver) not in (("sqlite", "pysqlite"), ("postgresql", "psycopg")):
        raise DatabaseUnavailable(
            f"tinhgon keeps its data in SQLite or PostgreSQL through psycopg, not {parsed.drivername!r}; use {URL_FORMS}"
        )


def reach(engine: Engine) -> None:
    """Open and close one connection, so that a command finds out at once,
    with a readable reason, that the database is not there.

    Raises:
        DatabaseUnavailable: the server refused or did not answer, or the
            SQLite file cannot be opened.
    """
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:  # OperationalError, InterfaceError, or DatabaseError for a file that is no database
        reason = " ".join(line.strip() for line in str(exc.orig or exc).splitlines() if line.strip())
        shown = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot open the database {shown}: {reason}") from None


IDLE_PING_SECONDS = 2.0
"""A pooled PostgreSQL connection unused for longer is checked before it is handed out."""


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection with a round trip to the server only when
    it has lain unused for :data:`IDLE_PING_SECONDS`.

    SQLAlchemy's ``pool_pre_ping`` checks every one, a round trip for each
    transaction (a fifteenth of an action's time, a seventh of an inbox
    read's). A connection in use a moment ago is alive unless the server
    went away in that moment, and then the transactions running at that
    moment fail all the same; one found dead here is replaced before anybody
    uses it."""

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError("a pooled connection no longer answers") from exc

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)


_IDLE_SINCE = "tinhgon_idle_since"
