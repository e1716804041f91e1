"""PostgreSQL statements on the event loop, sent through libpq itself.

A worker's case actions on PostgreSQL are two statements each, awaited on a
pool of asyncio psycopg connections (:class:`~engine.store.AsyncStatements`).
Through psycopg's cursor each statement paid about 45 µs of Python on this
machine's two cores, over the 11 µs that libpq's own calls and the waits
cost: the cursor's generators, its query conversion, its cache of prepared
statements and its result sets, most of which one statement, one row and
one transaction (autocommit) do not need. Here the statement goes to
psycopg's ``pgconn`` (libpq) as a prepared statement, with psycopg's own
adapters (a :class:`~psycopg.adapt.Transformer`) dumping the parameters and
loading the row, and psycopg's errors raised for what the server refuses.
Measured in one process, actions taking turns between the two ways: an
action took 11 % less CPU than through the cursor.

Each connection keeps its prepared statements, one per statement and set
of parameter types, named ``tinhgon_N``; a connection the pool replaces
starts afresh. The pool hands a connection to one task at a time, so no
lock is taken; a task cancelled while it waits leaves the connection busy,
and the pool closes it when it comes back (psycopg_pool does so with any
connection returned in the middle of an operation).
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy.engine import Dialect

from .direct import Statement, Trace, _bound

_UNDEFINED_STATEMENT = "26000"  # invalid_sql_statement_name: a prepared statement the server no longer has


class _Session:
    """What one libpq connection keeps between checkouts."""

    def __init__(self, connection: Any) -> None:
        self.transformer = Transformer(connection)
        self.encoding = connection.info.encoding
        self.prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.names = itertools.count()
        """a new name each time: one is never taken twice, even after some were deallocated"""


_SESSIONS: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()


class AsyncDirect:
    """As :class:`~engine.direct.Direct`, on an asyncio psycopg connection in
    autocommit (each statement its own transaction), for work done on the
    event loop (see :func:`~engine.direct.run_steps_async`); only
    :meth:`one`, which is all that work asks."""

    def __init__(self, connection: Any, dialect: Dialect, trace: Trace | None = None) -> None:
        self.dialect = dialect
        self._pgconn = connection.pgconn
        session = _SESSIONS.get(self._pgconn)
        if session is None:
            session = _SESSIONS[self._pgconn] = _Session(connection)
        self._session = session
        self._trace = trace

    async def one(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        """The first row, or None.

        Raises:
            psycopg.Error: the server refused the statement (the error of
                its SQLSTATE), or the connection failed.
        """
        compiled, parameters = _bound(self.dialect, statement, values, self._trace)
        assert compiled.numbered is not None and isinstance(parameters, dict), "a statement compiled for psycopg"
        sql, order = compiled.numbered
        transformer = self._session.transformer
        params = transformer.dump_sequence([parameters[name] for name in order], [PyFormat.AUTO] * len(order))
        types = tuple(transformer.types or ())
        formats = list(transformer.formats or ())
        try:
            result = await self._prepared(sql, types, params, formats)
        except errors.Error as exc:
            if exc.sqlstate != _UNDEFINED_STATEMENT:
                raise
            self._session.prepared.clear()  # deallocated behind our back: prepare again, once
            result = await self._prepared(sql, types, params, formats)
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples == 0:
            return None
        transformer.set_pgresult(result)
        raw = transformer.load_row(0, tuple)
        return statement.converter(self.dialect, compiled, lambda: [result.ftype(i) for i in range(result.nfields)])(raw)

    async def _prepared(self, sql: bytes, types: tuple[int, ...], params: Sequence[Any], formats: list[Any]) -> Any:
        pgconn, prepared = self._pgconn, self._session.prepared
        name = prepared.get((sql, types))
        if name is None:
            name = f"tinhgon_{next(self._session.names)}".encode()
            pgconn.send_prepare(name, sql, param_types=types)
            await self._result()
            prepared[(sql, types)] = name
        pgconn.send_query_prepared(name, params, param_formats=formats)
        return await self._result()

    async def _result(self) -> Any:
        """The result of what was sent, once the server has answered it
        whole; a refusal raised as psycopg's error for its SQLSTATE."""
        pgconn = self._pgconn
        loop = asyncio.get_running_loop()
        while True:
            flushing = pgconn.flush()  # 1: more to send, once the socket takes it
            pgconn.consume_input()
            if not flushing and not pgconn.is_busy():
                break
            await _ready(loop, pgconn.socket, write=bool(flushing))
        result = last = pgconn.get_result()
        while last is not None:  # one statement: one result, then None
            last = pgconn.get_result()
        if result is None:
            raise errors.InternalError("the server sent no result")
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding=self._session.encoding)
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise errors.InternalError(f"unexpected result status {pq.ExecStatus(result.status).name}")
        return result


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    """Until ``fd`` can be read (or written, with ``write``; read too, so
    that a server answering before it has taken everything is heard)."""
    woken = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    loop.add_reader(fd, wake)
    if write:
        loop.add_writer(fd, wake)
    try:
        await woken
    finally:
        loop.remove_reader(fd)
        if write:
            loop.remove_writer(fd)
