"""``tinhgon db backup FILE``: a consistent copy of a SQLite database while
the service writes to it, by SQLite's online backup API.

The copy is one read transaction's view of the database (in WAL mode
writers go on meanwhile), so every case in it has all the events it had
committed by then, and nothing half-written. It is made in a private file
beside FILE (mode 0600), checked, then moved to FILE: a FILE that exists is
replaced only when asked, and a failed backup leaves none behind. The copy
then records in itself that it is a backup (a row of ``backups``, see
:class:`engine.db.BackupRow`), and is left in rollback-journal mode: one
file, with nothing beside it.

PostgreSQL is backed up with its own tools (``pg_dump -Fc``, ``pg_restore``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from procedures.errors import TinhgonError
from procedures.messages import t

from .db import BackupRow
from .schema import current, head


class BackupRefused(TinhgonError):
    """The backup cannot be made as asked (the database is PostgreSQL, or
    FILE exists without ``force``); nothing was written."""


@dataclass(frozen=True, slots=True)
class Backup:
    """What :func:`backup` made."""

    path: Path
    source: str
    taken_at: dt.datetime
    revision: str
    size: int


def exists_already(target: Path) -> str:
    """Why a backup to ``target`` is refused without ``--force``."""
    return t("{file} exists already; give --force to replace it", file=target)


def sqlite_file(url: str) -> Path:
    """The file of a ``sqlite:///FILE`` URL.

    Raises:
        BackupRefused: a PostgreSQL URL, or an in-memory SQLite database.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupRefused(
            t("use pg_dump -Fc to back up a PostgreSQL database and pg_restore to restore it (README, Operating)")
        )
    if parsed.database in (None, "", ":memory:"):
        raise BackupRefused(t("an in-memory database has nothing to back up"))
    return Path(parsed.database)


def backup(
    url: str, target: Path, *, force: bool = False, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> Backup:
    """Copy the SQLite database at ``url`` (at schema head: the caller
    migrates it first) to ``target``, consistent while others write.

    Raises:
        BackupRefused: see :func:`sqlite_file`; ``target`` exists and not ``force``.
        OSError: ``target``'s folder cannot be written.
        sqlite3.Error: the database could not be read, or the copy is not sound.
    """
    source = sqlite_file(url).resolve()
    if target.exists() and not force:
        raise BackupRefused(exists_already(target))
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)  # mkstemp made it 0600: the copy holds every case's data
    partial = Path(name)
    try:
        taken_at = _copy(source, partial, clock)
        revision = _record(partial, f"sqlite:///{source}", taken_at)
        if force:
            os.replace(partial, target)
        else:
            try:
                os.link(partial, target)  # fails, rather than replaces, when FILE appeared meanwhile
            except FileExistsError:
                raise BackupRefused(exists_already(target)) from None
    finally:
        for leftover in (partial, Path(f"{partial}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return Backup(target, f"sqlite:///{source}", taken_at, revision, target.stat().st_size)


def _copy(source: Path, partial: Path, clock: Callable[[], dt.datetime]) -> dt.datetime:
    """The whole database in one step (one read transaction: a copy made
    in several steps starts again whenever another connection writes)."""
    src = sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=30)  # never creates a database that is not there
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            taken_at = clock()
            dst.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    return taken_at


def _record(partial: Path, source: str, taken_at: dt.datetime) -> str:
    """Check the copy and write its ``backups`` row; its schema revision."""
    engine = create_engine(f"sqlite:///{partial}", poolclass=NullPool, hide_parameters=True)
    try:
        revision = current(engine)
        if revision != head():
            raise sqlite3.DatabaseError(
                t("the copy is at schema revision {revision}, not at {newest}", revision=revision, newest=head())
            )
        with engine.begin() as connection:
            (check,) = connection.exec_driver_sql("PRAGMA quick_check").one()
            if check != "ok":
                raise sqlite3.DatabaseError(t("the copy is not sound: {check}", check=check))
            connection.execute(insert(BackupRow).values(taken_at=taken_at, source=source))
    finally:
        engine.dispose()
    return revision
