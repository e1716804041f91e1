"""The unit of work: one database transaction, and the reads and writes it owns.

Every change to the database happens inside ``with store.unit() as uow:``;
the transaction commits when the block ends normally and rolls back when it
raises, so a refused action leaves nothing behind. Repository helpers
(:class:`UnitOfWork` methods) never commit on their own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Engine, Select, Table, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from procedures.messages import t

from . import connection as connection_module
from . import journal
from .codes import CODE_FORM, EXACT, VERSION_MAX, VERSION_MIN, code_key, code_lock, valid_code
from .connection import DEFAULT_URL, connect, duplicate_key
from .db import CaseRow, ProcedureRow, TokenRow, UserRow
from .direct import AsyncOne, Direct, Statement, Trace
from .errors import Conflict, NotFound, NotPublished
from .journal import content_hash
from .keys import Signer
from .rows import NEWEST_PUBLISHED, code_params, exact_first, of_code

DRAFT, PUBLISHED = "draft", "published"
_PROCEDURES = cast(Table, ProcedureRow.__table__)
_USER_BY_TOKEN = Statement(
    select(UserRow.id, UserRow.name, UserRow.unit, UserRow.roles, UserRow.permissions)
    .join(TokenRow, TokenRow.user_id == UserRow.id)
    .where(TokenRow.token_hash == bindparam("h"), TokenRow.revoked_at.is_(None))
)


class Named(Protocol):
    """What storing a version needs of it: a :class:`~procedures.model.Definition`,
    or the header the service got from reading it elsewhere."""

    @property
    def code(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def name(self) -> str: ...


class WriterGate:
    """Lets one writer at a time into a SQLite database, queued, across the
    threads of this process and, through ``flock`` on a lock file beside the
    database, across processes (several workers, a command run meanwhile).

    SQLite admits one writer; a writer that finds the lock taken sleeps in
    SQLite's busy handler for 1, 2, 5, ... up to 100 ms between tries, so
    under load the database lay idle while writers slept (actions waited
    most of a second at the 99th percentile). Writers queued here wake as
    soon as the one before them is done, and SQLite's own lock is then
    always free.
    """

    def __init__(self, path: str | None) -> None:
        # Reentrant, so that a (mistaken) write nested in another on one
        # thread fails on SQLite's busy timeout with an error, not by hanging.
        self._thread = threading.RLock()
        self._depth = 0
        self._file: int | None = None
        self.path = f"{path}-writer.lock" if path else None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            if self.path is None or self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self._file is None:
                self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._file, fcntl.LOCK_EX)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread:
            if self._file is not None:
                os.close(self._file)
                self._file = None


class Store:
    """Where cases are kept: a SQLAlchemy engine and a session factory."""

    def __init__(self, url: str = DEFAULT_URL, **engine_options: Any) -> None:
        self.url = url
        self.engine: Engine = connect(url, **engine_options)
        self._writer = self.engine.execution_options(tinhgon_write=True)
        self._sqlite = self.engine.dialect.name == "sqlite"
        database = self.engine.url.database
        self._gate = WriterGate(database if database and database != ":memory:" else None) if self._sqlite else None
        self.trace: Trace | None = None
        """Called with the SQL of every statement :meth:`direct` runs (benchmarks count them)."""
        self.signer: Signer | None = None
        """The server's key, which signs the journal entries of the changes made
        through :meth:`unit` (:mod:`engine.journal`); set by whoever loaded it."""

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def one_writer(self) -> bool:
        """Whether the database lets one writing transaction run at a time
        (SQLite), so that no other transaction sees what one is doing."""
        return self._sqlite

    @contextmanager
    def unit(self, *, write: bool = True) -> Iterator[UnitOfWork]:
        """A transaction; commits at the end of the block, rolls back on error.

        ``write=False`` starts an ordinary transaction for reading; on SQLite
        a writing unit takes the write lock at its start (``BEGIN
        IMMEDIATE``), so what it reads is what it will update.
        """
        with self._writing(write), (self._writer if write else self.engine).connect() as connection, connection.begin():
            uow = UnitOfWork(connection, self.signer)
            try:
                yield uow
                uow.flush()
            finally:
                uow.close()

    def _writing(self, write: bool) -> AbstractContextManager[None]:
        """The writer gate a writing transaction on SQLite passes first."""
        return self._gate.held() if write and self._gate is not None else nullcontext()

    @contextmanager
    def direct(self, *, write: bool = True) -> Iterator[Direct]:
        """A transaction run on the pooled DB-API connection itself, for the
        hot paths' prebuilt statements (:mod:`engine.direct`); it commits at
        the end of the block and rolls back when the block raises, as
        :meth:`unit` does (SQLite's writers here too start with ``BEGIN
        IMMEDIATE``)."""
        with self._writing(write):
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

    @contextmanager
    def statements(self) -> Iterator[Direct]:
        """PostgreSQL: the pooled DB-API connection in autocommit, each
        statement a transaction of its own (for a change read in one
        statement and written, guarded, in another: two round trips where a
        transaction takes four, with its ``BEGIN`` and ``COMMIT``)."""
        if self._sqlite:
            raise ValueError("SQLite runs its writes through the writer gate: use direct()")
        pooled = self.engine.raw_connection()
        dbapi: Any = pooled.driver_connection
        try:
            dbapi.autocommit = True
            direct = Direct(dbapi, self.engine.dialect, self.trace)
            try:
                yield direct
            finally:
                direct.close()
        finally:
            try:
                dbapi.autocommit = False  # as the pool hands its connections out
            except Exception:
                pooled.invalidate()  # broken: the pool opens a fresh connection next time
            pooled.close()

    @contextmanager
    def reading(self) -> Iterator[Direct]:
        """For reads each of which stands alone (a token check, then a page
        of the inbox): on PostgreSQL the statements in autocommit, a round
        trip each, where a transaction adds ``BEGIN`` and ``COMMIT``; on
        SQLite a reading transaction (its statements are calls, not round
        trips, and a read of several statements sees one state)."""
        if self._sqlite:
            with self.direct(write=False) as db:
                yield db
        else:
            with self.statements() as db:
                yield db

    def user_by_token_hash(self, token_hash: str, db: Direct | None = None) -> Any:
        """``(id, name, unit, roles, permissions)`` of a live token's user, or None.

        Every request asks this, so it is one prebuilt statement, run
        directly: in ``db`` when given (the request's own transaction), else
        as a read that stands alone (:meth:`reading`: on PostgreSQL one
        round trip in autocommit, not three)."""
        if db is not None:
            return db.one(_USER_BY_TOKEN, {"h": token_hash})
        with self.reading() as own:
            return own.one(_USER_BY_TOKEN, {"h": token_hash})

    def dispose(self) -> None:
        self.engine.dispose()
        if self._gate is not None:
            self._gate.close()


class AsyncStatements:
    """PostgreSQL: a pool of asyncio connections in autocommit, for work
    done on one event loop (the case actions of a worker, see
    :meth:`engine.cases.CaseService.change_signed_in_async`); opened and
    closed on that loop, by the service's lifespan.

    The pool is psycopg's: it replaces a connection that broke, and hands
    out at most ``size`` at once (the actions a worker has in flight)."""

    def __init__(self, store: Store, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool  # here: a run on SQLite never loads psycopg

        if store.dialect != "postgresql":
            raise ValueError("asyncio statements are for PostgreSQL")
        self._dialect = store.engine.dialect
        self._store = store
        conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=size, kwargs={"autocommit": True}, check=self._check, open=False
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def _check(self, connection: Any) -> None:
        """As the engine's pool does (:func:`engine.connection._ping_when_idle`): a
        connection that has lain unused for :data:`~engine.connection.IDLE_PING_SECONDS`
        is checked with a round trip before it is handed out; the pool
        replaces one that fails."""
        since = self._idle_since.get(connection)
        if since is not None and time.monotonic() - since > connection_module.IDLE_PING_SECONDS:
            await connection.execute("")

    async def open(self) -> None:
        await self._pool.open(wait=True)
        self._loop = asyncio.get_running_loop()

    def on_this_loop(self) -> bool:
        """Whether the running event loop is the one the pool was opened on
        (the only one it may be used from)."""
        return self._loop is asyncio.get_running_loop()

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[AsyncOne]:
        """A pooled connection's statements, each a transaction of its own."""
        from .libpq import AsyncDirect  # here: as psycopg_pool

        async with self._pool.connection() as connection:
            try:
                yield AsyncDirect(connection, self._dialect, self._store.trace)
            finally:
                self._idle_since[connection] = time.monotonic()


class UnitOfWork:
    """One transaction: its connection, for statements of its own, and an
    ORM session on that connection, opened when first asked for. The
    transaction belongs to the unit; the session never commits it."""

    def __init__(self, connection: Connection, signer: Signer | None = None) -> None:
        self.connection = connection
        self.signer = signer
        self._session: Session | None = None

    def journal(self, kind: str, subject: str, data: Mapping[str, Any], *, actor: str) -> None:
        """Record a change of users, tokens or procedures in the journal, in this transaction."""
        self.flush()
        journal.write(self.connection, journal.entry_values(self.signer, kind=kind, subject=subject, data=data, actor=actor))

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
        """The version ``version`` of ``code``, spelled in any case.

        Raises:
            NotFound: there is none.
        """
        row = self.find_procedure(code, version)
        if row is None:
            raise NotFound(t("no procedure {code} version {version}", code=code, version=version))
        return row

    def procedure_by_id(self, procedure_id: int) -> ProcedureRow:
        row = self.session.get(ProcedureRow, procedure_id)
        if row is None:
            raise NotFound(t("no procedure with id {id}", id=procedure_id))
        return row

    def find_procedure(self, code: str, version: int) -> ProcedureRow | None:
        """The version ``version`` of ``code`` (codes that differ only in case
        are one code), or None; a row kept under the exact spelling asked
        for comes first (see migration 0003_code_key)."""
        return self.session.scalar(
            select(ProcedureRow)
            .where(of_code(_PROCEDURES), ProcedureRow.version == version)
            .order_by(exact_first(_PROCEDURES))
            .limit(1),
            code_params(code),
        )

    def procedure_ids(self, code: str) -> Select[Any]:
        """The ids of every version of ``code``, as a subquery."""
        return select(ProcedureRow.id).where(of_code(_PROCEDURES)).params(code_params(code))

    def versions(self, code: str) -> list[ProcedureRow]:
        """Every version of ``code``, oldest first."""
        q = select(ProcedureRow).where(ProcedureRow.id.in_(self.procedure_ids(code))).order_by(ProcedureRow.version)
        return list(self.session.scalars(q))

    def code_problems(self) -> list[str]:
        """One line for each stored version whose code breaks the code rule
        (stored before it) or was kept under its own spelling because it
        collides ignoring case with an earlier one (migration 0003_code_key),
        and each whose version is outside 1..1,000,000. Nothing is changed:
        the operator decides. Codes are shown as Python escapes (``ascii``),
        so an invisible or look-alike character shows."""
        lines = []
        rows = self.session.execute(
            select(ProcedureRow.code, ProcedureRow.version, ProcedureRow.code_key).order_by(ProcedureRow.id)
        )
        for code, version, key in rows:
            where = {"code": ascii(code), "version": version}
            if not valid_code(code):
                lines.append(
                    t(
                        "procedure {code} version {version}: the code breaks the rule {rule}; the API cannot find this procedure by its code",
                        rule=CODE_FORM,
                        **where,
                    )
                )
            if key.startswith(EXACT):
                lines.append(
                    t(
                        "procedure {code} version {version}: the code is the same as {stored} ignoring upper and lower case; "
                        "kept as it is, found only when written letter for letter",
                        stored=ascii(self.stored_spelling(code)),
                        **where,
                    )
                )
            if not VERSION_MIN <= version <= VERSION_MAX:
                lines.append(
                    t(
                        "procedure {code} version {version}: the version is outside {low}..{high}",
                        low=VERSION_MIN,
                        high=f"{VERSION_MAX:,}",
                        **where,
                    )
                )
        return lines

    def stored_spelling(self, code: str) -> str | None:
        """How ``code`` is spelled where it is stored already, when it is."""
        return self.session.scalar(select(ProcedureRow.code).where(ProcedureRow.code_key == code_key(code)).limit(1))

    def claim_code(self, code: str) -> None:
        """Make sure ``code`` is stored, if at all, under this very spelling;
        on PostgreSQL the code's lock is held to the end of the transaction,
        so that a concurrent upload of another spelling waits, then sees this one.

        Raises:
            Conflict: the code is stored under another spelling (it differs
                only in case, so it is that code).
        """
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": code_lock(code_key(code))})
        stored = self.stored_spelling(code)
        if stored is not None and stored != code:
            raise Conflict(
                t(
                    "the procedure code {code} is the code {stored} stored already (they differ only in upper and lower case, "
                    "so they are one code): write it {stored}",
                    code=code,
                    stored=stored,
                )
            )

    def procedures(self) -> list[ProcedureRow]:
        return list(self.session.scalars(select(ProcedureRow).order_by(ProcedureRow.code, ProcedureRow.version)))

    def add_procedure(
        self, defn: Named, body: str, *, now: dt.datetime, status: str = DRAFT, actor: str = "tinhgon"
    ) -> ProcedureRow:
        """Store a new version.

        Raises:
            Conflict: this code and version exist already, or the code is
                stored under another spelling (:meth:`claim_code`).
        """
        self.claim_code(defn.code)
        if self.find_procedure(defn.code, defn.version) is not None:
            raise Conflict(t("procedure {code} version {version} exists already", code=defn.code, version=defn.version))
        row = ProcedureRow(
            code=defn.code,
            code_key=code_key(defn.code),
            version=defn.version,
            name=defn.name,
            status=status,
            body=body,
            content_hash=content_hash(body),
            created_at=now,
            published_at=now if status == PUBLISHED else None,
        )
        self.insert(row, t("procedure {code} version {version} exists already", code=defn.code, version=defn.version))
        self.journal(
            journal.PROCEDURE, journal.procedure_subject(row.code, row.version), journal.procedure_state(row), actor=actor
        )
        return row

    def insert(self, row: Any, taken: str) -> None:
        """Add ``row`` now, after its caller found its key free.

        Raises:
            Conflict: ``taken``; another transaction stored the same key
                since (on PostgreSQL two can look at once; the one that
                inserts second fails on the unique constraint).
        """
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError as exc:
            if not duplicate_key(exc):
                raise
            raise Conflict(taken) from None

    def publish(self, code: str, version: int, *, now: dt.datetime, actor: str = "tinhgon") -> ProcedureRow:
        row = self.procedure(code, version)
        if row.status != PUBLISHED:
            row.status, row.published_at = PUBLISHED, now
            self.journal(journal.PROCEDURE, journal.procedure_subject(code, version), journal.procedure_state(row), actor=actor)
        return row

    def newest_published_id(self, code: str) -> int:
        """The id of the version new cases of ``code`` start on.

        Raises:
            NotPublished: ``code`` has no published version.
        """
        found = self.connection.execute(cast(Executable, NEWEST_PUBLISHED.statement), code_params(code)).scalar()
        if found is None:
            raise NotPublished(t("procedure «{code}» has no published version", code=code))
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
            raise NotFound(t("no user «{user}»", user=user_id))
        return row

    def find_user(self, user_id: str) -> UserRow | None:
        return self.session.get(UserRow, user_id)

    def user_count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(UserRow)) or 0)

    # -- cases --------------------------------------------------------------------
    def case(self, case_id: int) -> CaseRow:
        row = self.session.get(CaseRow, case_id)
        if row is None:
            raise NotFound(t("no case {case}", case=case_id), case_id=case_id)
        return row
