"""The hot paths' statements, run straight on the DB-API connection.

Every case action, case start, idempotency claim and signed-in request runs
a handful of small statements. Through a SQLAlchemy ``Connection`` each one
pays for an execution context, events, parameter processing and a result
object: on SQLite that cost several times the database work itself. Here
SQLAlchemy still compiles each statement, once per dialect (its SQL text,
the order of its parameters, and the bind and result conversions of its
column types, such as :class:`~engine.db.UTCDateTime` and JSON), and an
execution is then one call on the DB-API cursor with those conversions
applied by hand. Transactions are opened and closed on the pooled DB-API
connection by :meth:`engine.store.Store.direct`.

Only statements with plain bound parameters are accepted (no expanding
``IN`` lists, no literal rendering): what compiles once must run as is.
"""

from __future__ import annotations

import re
import threading
from collections import namedtuple
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]
Trace = Callable[[str, Any], None]
"""Told the SQL and the DB-API parameters of each statement run (a list of them for ``many``)"""


@dataclass(frozen=True, slots=True)
class Compiled:
    """One statement as one dialect runs it."""

    sql: str
    names: tuple[str, ...]
    """the bound parameters, in the order a positional paramstyle takes them"""
    positional: bool
    processors: tuple[tuple[int, Processor], ...]
    """(index in ``names``, conversion) of the parameters whose type converts"""
    result_types: tuple[Any, ...]
    """the selected (or returned) columns' types, empty for a plain write"""
    row: type[tuple[Any, ...]] | None
    """the row class of what it selects: a named tuple of the column keys"""
    fixed: dict[str, Any]
    """parameters whose value is in the statement itself (a literal, a limit)"""
    numbered: tuple[bytes, tuple[str, ...]] | None = None
    """with psycopg: the SQL as libpq takes it, ``$1``, ``$2``... for the
    parameters named, in that order (see :class:`engine.libpq.AsyncDirect`)"""
    pick: Callable[[Mapping[str, Any]], Sequence[Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = self.names
        pick: Callable[[Mapping[str, Any]], Sequence[Any]]
        if not names:
            pick = lambda values: ()  # noqa: E731
        elif len(names) == 1:
            pick = lambda values: (values[names[0]],)  # noqa: E731
        else:
            pick = itemgetter(*names)
        object.__setattr__(self, "pick", pick)

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (by parameter name) converted and laid out for the cursor.

        Raises:
            KeyError: a parameter of the statement is not in ``values``.
        """
        if self.fixed:
            values = {**self.fixed, **values}
        out = list(self.pick(values))
        for i, process in self.processors:
            out[i] = process(out[i])
        return out if self.positional else dict(zip(self.names, out, strict=True))


class Statement:
    """A SQLAlchemy Core statement, compiled on first use for each dialect.

    ``keys`` names the columns an ``INSERT`` without ``.values()`` sets (its
    parameters are then those keys).
    """

    def __init__(self, statement: ClauseElement, *, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = tuple(keys) if keys is not None else None
        self._by_dialect: dict[str, Compiled] = {}
        self._converters: dict[str, Callable[[Sequence[Any]], Any]] = {}
        self._lock = threading.Lock()

    def on(self, dialect: Dialect) -> Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._by_dialect.get(dialect.name) or self._compile(dialect)
                self._by_dialect[dialect.name] = found
        return found

    def _compile(self, dialect: Dialect) -> Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(self.keys) if self.keys is not None else None)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.bind_names.values())
        processors, fixed = [], {}
        for i, name in enumerate(names):
            bind = compiled.binds[name]
            if bind.expanding or bind.literal_execute:
                raise ValueError(f"{name}: expanding and literal parameters cannot be run directly")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((i, process))
            if not bind.required:
                fixed[name] = bind.effective_value
        columns = [(c.key, c.type) for c in getattr(self.statement, "exported_columns", ())]
        row = namedtuple("Row", [key for key, _ in columns], rename=True) if columns else None
        return Compiled(
            sql=compiled.string,
            names=names,
            positional=bool(compiled.positional),
            processors=tuple(processors),
            result_types=tuple(type_ for _, type_ in columns),
            row=row,
            fixed=fixed,
            numbered=numbered(compiled.string) if dialect.driver == "psycopg" else None,
        )

    def converter(
        self, dialect: Dialect, compiled: Compiled, type_codes: Callable[[], Sequence[Any]]
    ) -> Callable[[Sequence[Any]], Any]:
        """What turns a DB-API row of this statement into its named row, with
        each column converted as SQLAlchemy would for the DB-API's type codes
        of its columns (``type_codes()``, a cursor's description's). Built at
        the first execution on a dialect (the type codes of one statement's
        columns do not change; psycopg builds the description anew each time
        it is asked)."""
        found = self._converters.get(dialect.name)
        if found is None:
            assert compiled.row is not None, "the statement selects nothing"
            codes = type_codes()
            processors = [
                (i, type_.dialect_impl(dialect).result_processor(dialect, code))
                for i, (type_, code) in enumerate(zip(compiled.result_types, codes, strict=True))
            ]
            found = _converter(compiled.row, [(i, p) for i, p in processors if p is not None])
            self._converters[dialect.name] = found
        return found


def _converter(row: type[tuple[Any, ...]], processors: list[tuple[int, Processor]]) -> Callable[[Sequence[Any]], Any]:
    make = tuple.__new__
    if not processors:
        return lambda raw: make(row, raw)

    def convert(raw: Sequence[Any]) -> Any:
        values = list(raw)
        for i, process in processors:
            value = values[i]
            if value is not None:  # SQL NULL is None whatever the type
                values[i] = process(value)
        return make(row, values)

    return convert


_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")


def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """SQL compiled for psycopg (``%(name)s`` placeholders, ``%%`` for
    ``%``) as libpq takes it: ``$1``, ``$2``... in the order the names first
    appear, a name used twice keeping its number; and those names.

    >>> numbered("SELECT %(a)s, %(b)s || %(a)s, 'x' LIKE '%%'")
    (b"SELECT $1, $2 || $1, 'x' LIKE '%'", ('a', 'b'))
    """
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        return f"${order.setdefault(name, len(order) + 1)}"

    return _PYFORMAT.sub(number, sql).encode(), tuple(order)


class Direct:
    """The statements of one transaction on one DB-API connection (see
    :meth:`engine.store.Store.direct`); rows come back as named tuples with
    SQLAlchemy's conversions applied."""

    def __init__(self, dbapi_connection: Any, dialect: Dialect, trace: Trace | None = None) -> None:
        self.dialect = dialect
        self._cursor = dbapi_connection.cursor()
        self._trace = trace

    def _execute(self, statement: Statement, values: Mapping[str, Any]) -> Compiled:
        compiled, parameters = _bound(self.dialect, statement, values, self._trace)
        self._cursor.execute(compiled.sql, parameters)
        return compiled

    def one(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        """The first row, or None."""
        compiled = self._execute(statement, values)
        raw = self._cursor.fetchone()
        return None if raw is None else statement.converter(self.dialect, compiled, self._codes)(raw)

    def _codes(self) -> list[Any]:
        return [d[1] for d in self._cursor.description]

    def all(self, statement: Statement, values: Mapping[str, Any]) -> list[Any]:
        compiled = self._execute(statement, values)
        raw = self._cursor.fetchall()
        convert = statement.converter(self.dialect, compiled, self._codes)
        return [convert(r) for r in raw]

    def scalar(self, statement: Statement, values: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.one(statement, values)
        return None if row is None else row[0]

    def run(self, statement: Statement, values: Mapping[str, Any]) -> int:
        """A write; the number of rows it changed."""
        self._execute(statement, values)
        return int(self._cursor.rowcount)

    def many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """One write for each of ``rows``."""
        if not rows:
            return
        if len(rows) == 1:  # one row: execute costs less than executemany
            self._execute(statement, rows[0])
            return
        compiled = statement.on(self.dialect)
        parameters = [compiled.parameters(r) for r in rows]
        if self._trace is not None:
            self._trace(compiled.sql, parameters)
        self._cursor.executemany(compiled.sql, parameters)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction, undone alone when the block raises.

        Raises:
            TransactionBroken: the savepoint could not be rolled back or
                released; the transaction must not commit.
        """
        self._cursor.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            try:
                self._cursor.execute("ROLLBACK TO SAVEPOINT part")
                self._cursor.execute("RELEASE SAVEPOINT part")
            except Exception as exc:
                raise TransactionBroken("a savepoint could not be rolled back") from exc
            raise
        try:
            self._cursor.execute("RELEASE SAVEPOINT part")
        except Exception as exc:
            raise TransactionBroken("a savepoint could not be released") from exc

    def close(self) -> None:
        self._cursor.close()


def _bound(
    dialect: Dialect, statement: Statement, values: Mapping[str, Any], trace: Trace | None
) -> tuple[Compiled, Sequence[Any] | dict[str, Any]]:
    compiled = statement.on(dialect)
    parameters = compiled.parameters(values)
    if trace is not None:
        trace(compiled.sql, parameters)
    return compiled, parameters


Ask = tuple[Statement, Mapping[str, Any]]
"""A statement and its values, whose first row (or None) the asker gets back"""


class AsyncOne(Protocol):
    """What :func:`run_steps_async` runs statements on (:class:`engine.libpq.AsyncDirect`)."""

    async def one(self, statement: Statement, values: Mapping[str, Any]) -> Any: ...


R = TypeVar("R")


def _advance(steps: Generator[Ask, Any, R], answer: Any, failed: BaseException | None) -> tuple[bool, Any]:
    """``steps`` given the last statement's row (or its error): (False, the
    next statement) or (True, what the work returns)."""
    try:
        return False, steps.throw(failed) if failed is not None else steps.send(answer)
    except StopIteration as done:
        return True, done.value


def run_steps(steps: Generator[Ask, Any, R], db: Direct) -> R:
    """Run work written as a generator of statements (:data:`Ask`) on
    ``db``: each statement's first row is sent back in, and an error raised
    by a statement is thrown in at the ``yield`` that asked for it. The same
    work runs on the event loop through :func:`run_steps_async`."""
    finished, value = _advance(steps, None, None)
    while not finished:
        try:
            answer, failed = db.one(*value), None
        except Exception as exc:
            answer, failed = None, exc
        finished, value = _advance(steps, answer, failed)
    return cast(R, value)


async def run_steps_async(steps: Generator[Ask, Any, R], db: AsyncOne) -> R:
    """As :func:`run_steps`, each statement awaited on ``db``."""
    finished, value = _advance(steps, None, None)
    while not finished:
        try:
            answer, failed = await db.one(*value), None
        except Exception as exc:
            answer, failed = None, exc
        finished, value = _advance(steps, answer, failed)
    return cast(R, value)


class TransactionBroken(Exception):
    """A transaction that must be rolled back whole."""
