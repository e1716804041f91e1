"""The unit of work: one database transaction, and the reads and writes it owns.

Every change to the database happens inside ``with store.unit() as uow:``;
the transaction commits when the block ends normally and rolls back when it
raises, so a refused action leaves nothing behind. Repository helpers
(:class:`UnitOfWork` methods) never commit on their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from procedures.model import Definition

from .db import DEFAULT_URL, CaseRow, EventRow, ProcedureRow, TokenRow, UserRow, connect
from .direct import Direct
from .errors import Conflict, NotFound, NotPublished
from .rows import NEWEST_PUBLISHED

DRAFT, PUBLISHED = "draft", "published"
_USER_BY_TOKEN = (
    select(UserRow.id, UserRow.name, UserRow.unit, UserRow.roles, UserRow.permissions)
    .join(TokenRow, TokenRow.user_id == UserRow.id)
    .where(TokenRow.token_hash == bindparam("h"), TokenRow.revoked_at.is_(None))
)


def content_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class Store:
    """Where cases are kept: a SQLAlchemy engine and a session factory."""

    def __init__(self, url: str = DEFAULT_URL, **engine_options: Any) -> None:
        self.url = url
        self.engine: Engine = connect(url, **engine_options)
        self._writer = self.engine.execution_options(tinhgon_write=True)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self.trace: Callable[[str], None] | None = None
        """Called with the SQL of every statement :meth:`direct` runs (benchmarks count them)."""

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit(self, *, write: bool = True) -> Iterator[UnitOfWork]:
        """A transaction; commits at the end of the block, rolls back on error.

        ``write=False`` starts an ordinary transaction for reading; on SQLite
        a writing unit takes the write lock at its start (``BEGIN
        IMMEDIATE``), so what it reads is what it will update.
        """
        with (self._writer if write else self.engine).connect() as connection, connection.begin():
            uow = UnitOfWork(connection)
            try:
                yield uow
                uow.flush()
            finally:
                uow.close()

    @contextmanager
    def direct(self, *, write: bool = True) -> Iterator[Direct]:
        """A transaction run on the pooled DB-API connection itself, for the
        hot paths' prebuilt statements (:mod:`engine.direct`); it commits at
        the end of the block and rolls back when the block raises, as
        :meth:`unit` does (SQLite's writers here too start with ``BEGIN
        IMMEDIATE``)."""
        pooled = self.engine.raw_connection()
        dbapi: Any = pooled.driver_connection
        try:
            if self._sqlite:
                dbapi.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            direct = Direct(dbapi, self.engine.dialect, self.trace)
            try:
                yield direct
            finally:
                direct.close()
            dbapi.commit()
        except BaseException:
            try:
                dbapi.rollback()
            except Exception:
                pooled.invalidate()  # broken: the pool opens a fresh connection next time
            raise
        finally:
            pooled.close()

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """One transaction: its connection, for statements of its own, and an
    ORM session on that connection, opened when first asked for. The
    transaction belongs to the unit; the session never commits it."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(bind=self.connection, join_transaction_mode="rollback_only", expire_on_commit=False)
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    # -- procedures -------------------------------------------------------------
    def procedure(self, code: str, version: int) -> ProcedureRow:
        row = self.session.scalar(select(ProcedureRow).where(ProcedureRow.code == code, ProcedureRow.version == version))
        if row is None:
            raise NotFound(f"no procedure {code} version {version}")
        return row

    def procedure_by_id(self, procedure_id: int) -> ProcedureRow:
        row = self.session.get(ProcedureRow, procedure_id)
        if row is None:
            raise NotFound(f"no procedure with id {procedure_id}")
        return row

    def find_procedure(self, code: str, version: int) -> ProcedureRow | None:
        return self.session.scalar(select(ProcedureRow).where(ProcedureRow.code == code, ProcedureRow.version == version))

    def procedures(self) -> list[ProcedureRow]:
        return list(self.session.scalars(select(ProcedureRow).order_by(ProcedureRow.code, ProcedureRow.version)))

    def add_procedure(self, defn: Definition, body: str, *, now: dt.datetime, status: str = DRAFT) -> ProcedureRow:
        """Store a new version.

        Raises:
            Conflict: this code and version exist already.
        """
        if self.find_procedure(defn.code, defn.version) is not None:
            raise Conflict(f"procedure {defn.code} version {defn.version} exists already")
        row = ProcedureRow(
            code=defn.code,
            version=defn.version,
            name=defn.name,
            status=status,
            body=body,
            content_hash=content_hash(body),
            created_at=now,
            published_at=now if status == PUBLISHED else None,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def publish(self, code: str, version: int, *, now: dt.datetime) -> ProcedureRow:
        row = self.procedure(code, version)
        if row.status != PUBLISHED:
            row.status, row.published_at = PUBLISHED, now
        return row

    def newest_published_id(self, code: str) -> int:
        """The id of the version new cases of ``code`` start on.

        Raises:
            NotPublished: ``code`` has no published version.
        """
        found = self.connection.execute(cast(Executable, NEWEST_PUBLISHED.statement), {"b_code": code}).scalar()
        if found is None:
            raise NotPublished(f"procedure {code!r} has no published version")
        return int(found)

    def newest_published(self, code: str) -> ProcedureRow:
        """The version new cases of ``code`` start on.

        Raises:
            NotPublished: ``code`` has no published version.
        """
        return self.procedure_by_id(self.newest_published_id(code))

    # -- users --------------------------------------------------------------------
    def user(self, user_id: str) -> UserRow:
        row = self.session.get(UserRow, user_id)
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return row

    def find_user(self, user_id: str) -> UserRow | None:
        return self.session.get(UserRow, user_id)

    def user_count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(UserRow)) or 0)

    def user_by_token_hash(self, token_hash: str) -> Any:
        """``(id, name, unit, roles, permissions)`` of a live token's user, or None.

        Every request asks this, so it is one Core statement, built once."""
        return self.connection.execute(_USER_BY_TOKEN, {"h": token_hash}).one_or_none()

    # -- cases --------------------------------------------------------------------
    def case(self, case_id: int) -> CaseRow:
        row = self.session.get(CaseRow, case_id)
        if row is None:
            raise NotFound(f"no case {case_id}", case_id=case_id)
        return row

    def events(self, case_id: int) -> list[EventRow]:
        return list(self.session.scalars(select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.seq)))
