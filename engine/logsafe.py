"""Error logs that never carry what a statement was given.

A failed statement's error says more than the operator needs: SQLAlchemy's
names its parameters (``hide_parameters`` on the engine, :func:`engine.connection.connect`,
stops that), and PostgreSQL's ``DETAIL`` quotes the values of a key that
clashed (``Key (token_hash)=(…) already exists``), on the ORM's path and
on the direct one (:mod:`engine.direct`, :mod:`engine.libpq`) alike. A
token's hash or a person's name must not end up in a log file, so the
service's loggers (:data:`LOGGERS`) write each exception's traceback with
a database error told by its kind alone: for PostgreSQL its class, SQLSTATE
and the names of the table, column and constraint; for SQLite its message
(which names columns, never values); for SQLAlchemy's wrapper the SQL with
its placeholders.
"""

from __future__ import annotations

import logging
import sqlite3
import traceback

from sqlalchemy.exc import StatementError

LOGGERS = ("tinhgon.api", "tinhgon.web", "tinhgon.engine", "uvicorn.error", "uvicorn.asgi")
"""where the service logs exceptions: its own loggers and uvicorn's"""


def _name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _postgresql(exc: BaseException) -> str:
    """A psycopg error by its kind, SQLSTATE and schema names (its message
    and detail can quote values); one without SQLSTATE (no connection, a
    closed one) did not come from a statement, and keeps its message."""
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:
        return f"{_name(exc)}: {exc}"
    diag = getattr(exc, "diag", None)
    names = [
        f"{what} {value}"
        for what, attribute in (("table", "table_name"), ("column", "column_name"), ("constraint", "constraint_name"))
        if (value := getattr(diag, attribute, None))
    ]
    return f"{_name(exc)}: SQLSTATE {sqlstate}" + (f" ({', '.join(names)})" if names else "")


def safe_text(exc: BaseException) -> str:
    """The last line of ``exc``'s traceback, less any value a statement was given."""
    if isinstance(exc, StatementError):
        inner = safe_text(exc.orig) if isinstance(exc.orig, BaseException) else ""
        return f"{_name(exc)}: {inner}\n[SQL: {exc.statement}]"
    if type(exc).__module__.startswith("psycopg"):
        return _postgresql(exc)
    if isinstance(exc, sqlite3.Error):
        return f"{_name(exc)}: {exc}"
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")


def safe_traceback(exc: BaseException) -> str:
    """``exc``'s traceback, with what caused it or was being handled before,
    as Python writes it, each exception's text by :func:`safe_text`."""
    parts: list[str] = []
    seen: set[int] = set()

    def walk(e: BaseException) -> None:
        seen.add(id(e))
        if e.__cause__ is not None and id(e.__cause__) not in seen:
            walk(e.__cause__)
            parts.append("\nThe above exception was the direct cause of the following exception:\n\n")
        elif e.__context__ is not None and not e.__suppress_context__ and id(e.__context__) not in seen:
            walk(e.__context__)
            parts.append("\nDuring handling of the above exception, another exception occurred:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(e.__traceback__))
        parts.append(safe_text(e) + "\n")
        for n, inner in enumerate(getattr(e, "exceptions", ()) if isinstance(e, BaseExceptionGroup) else (), 1):
            if id(inner) not in seen:
                parts.append(f"\n+-- exception {n} of the group:\n")
                walk(inner)

    walk(exc)
    return "".join(parts).rstrip("\n")


class HideStatementValues(logging.Filter):
    """Writes a record's exception (and any exception among its arguments)
    as :func:`safe_traceback` and :func:`safe_text` do, before a handler
    formats it (a formatter takes the text it finds in ``exc_text``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = safe_traceback(record.exc_info[1])
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
            record.args = tuple(safe_text(a) if isinstance(a, BaseException) else a for a in record.args)
        return True


def hide_statement_values() -> None:
    """Put :class:`HideStatementValues` on each of :data:`LOGGERS`, once."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideStatementValues) for f in logger.filters):
            logger.addFilter(HideStatementValues())
