"""Statements sent through libpq on the event loop (engine.libpq): the same
rows as psycopg's cursor gives, psycopg's errors for what the server
refuses, a statement prepared once per connection, and a connection left
usable (or replaced) after a refusal, a deallocation or a cancellation."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import BigInteger, Boolean, Integer, bindparam, column, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import JSON, TIMESTAMP, Text

from engine.direct import AsyncOne, Statement
from engine.store import AsyncStatements, Store

T = TypeVar("T")

MIXED = Statement(
    text(
        "SELECT CAST(:i AS BIGINT) AS i, CAST(:s AS TEXT) AS s, CAST(:n AS TEXT) AS n, CAST(:b AS BOOLEAN) AS b,"
        " CAST(:t AS TIMESTAMP) AS t, CAST(:j AS JSON) AS j,"
        " ARRAY[CAST(:t AS TIMESTAMP), NULL] AS ts, ARRAY[CAST(:s AS TEXT), NULL, 'a,b'] AS ss,"
        " CAST(:s AS TEXT) || '%' || CAST(:i AS TEXT) AS literal"
    )
    .bindparams(bindparam("j", type_=JSON), bindparam("t", type_=TIMESTAMP))
    .columns(
        column("i", BigInteger),
        column("s", Text),
        column("n", Text),
        column("b", Boolean),
        column("t", TIMESTAMP),
        column("j", JSON),
        column("ts", ARRAY(TIMESTAMP)),
        column("ss", ARRAY(Text)),
        column("literal", Text),
    )
)
DIVIDE = Statement(text("SELECT 1 / CAST(:z AS INTEGER) AS q").columns(column("q", Integer)))
BACKEND = Statement(select(func.pg_backend_pid()))
SLEEP = Statement(text("SELECT pg_sleep(:s) IS NULL AS slept").columns(column("slept", Boolean)))
PREPARED = Statement(
    text("SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'tinhgon%%' AND statement = :sql").columns(
        column("n", Integer)
    )
)


@pytest.fixture
def pg_store(postgres_server: str) -> Iterator[Store]:
    store = Store(postgres_server, pool_size=1, max_overflow=0)
    yield store
    store.dispose()


def on_one_connection(store: Store, work: Callable[[AsyncStatements], Awaitable[T]]) -> T:
    """``work`` on an event loop, with a pool of one asyncio connection."""

    async def run() -> T:
        statements = AsyncStatements(store, 1)
        await statements.open()
        try:
            return await work(statements)
        finally:
            await statements.close()

    return asyncio.run(run())


async def one(statements: AsyncStatements, statement: Statement, values: dict[str, Any]) -> Any:
    db: AsyncOne
    async with statements.statements() as db:
        return await db.one(statement, values)


VALUES = [
    {
        "i": 2**40,
        "s": "Nguyễn 'Lan' \\ \"x\" %(i)s %%",
        "n": None,
        "b": True,
        "t": dt.datetime(2026, 12, 1, 8, 30, 0, 123456),
        "j": {"a": [1, "ô"]},
    },
    {"i": -7, "s": "", "n": "n", "b": False, "t": dt.datetime(1999, 1, 1), "j": None},
]


@pytest.mark.parametrize("values", VALUES, ids=["wide", "edges"])
def test_rows_come_back_as_psycopgs_cursor_gives_them(pg_store: Store, values: dict[str, Any]) -> None:
    with pg_store.direct(write=False) as db:
        expected = db.one(MIXED, values)
    got = on_one_connection(pg_store, lambda s: one(s, MIXED, values))
    assert got == expected
    assert got.literal == f"{values['s']}%{values['i']}"
    assert got.ts == [values["t"], None] and got.ss == [values["s"], None, "a,b"]


def test_a_refusal_is_psycopgs_error_and_the_connection_goes_on(pg_store: Store) -> None:
    async def work(statements: AsyncStatements) -> tuple[int, int, int]:
        before = (await one(statements, BACKEND, {}))[0]
        with pytest.raises(psycopg.errors.DivisionByZero) as refused:
            await one(statements, DIVIDE, {"z": 0})
        assert refused.value.sqlstate == "22012"
        after = (await one(statements, BACKEND, {}))[0]
        return before, after, (await one(statements, DIVIDE, {"z": 1}))[0]

    before, after, quotient = on_one_connection(pg_store, work)
    assert before == after and quotient == 1


def test_a_statement_is_prepared_once_per_connection_and_again_when_deallocated(pg_store: Store) -> None:
    sql = DIVIDE.on(pg_store.engine.dialect).numbered
    assert sql is not None

    async def work(statements: AsyncStatements) -> list[int]:
        counts = []
        for _ in range(3):
            await one(statements, DIVIDE, {"z": 1})
        counts.append((await one(statements, PREPARED, {"sql": sql[0].decode()}))[0])
        async with statements._pool.connection() as connection:  # behind the statements' back
            await connection.execute("DEALLOCATE ALL")
        assert (await one(statements, DIVIDE, {"z": 2}))[0] == 0
        counts.append((await one(statements, PREPARED, {"sql": sql[0].decode()}))[0])
        return counts

    assert on_one_connection(pg_store, work) == [1, 1]


def test_a_cancelled_statement_leaves_the_pool_a_working_connection(pg_store: Store) -> None:
    async def work(statements: AsyncStatements) -> tuple[int, int]:
        before = (await one(statements, BACKEND, {}))[0]
        task = asyncio.create_task(one(statements, SLEEP, {"s": 5}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the busy connection was closed on its way back, and replaced
        after = (await asyncio.wait_for(one(statements, BACKEND, {}), 10))[0]
        return before, after

    before, after = on_one_connection(pg_store, work)
    assert before != after


NAMES = Statement(
    text("SELECT string_agg(name, ',' ORDER BY name) AS names FROM pg_prepared_statements WHERE statement = :sql").columns(
        column("names", Text)
    )
)


def test_one_statement_deallocated_alone_is_prepared_again_under_a_new_name(pg_store: Store) -> None:
    sql = DIVIDE.on(pg_store.engine.dialect).numbered
    assert sql is not None

    async def work(statements: AsyncStatements) -> tuple[str, str]:
        await one(statements, DIVIDE, {"z": 1})
        await one(statements, BACKEND, {})
        first = (await one(statements, NAMES, {"sql": sql[0].decode()}))[0]
        async with statements._pool.connection() as connection:
            await connection.execute(f"DEALLOCATE {first}")
        assert (await one(statements, DIVIDE, {"z": 1}))[0] == 1
        assert (await one(statements, BACKEND, {}))[0] > 0
        return first, (await one(statements, NAMES, {"sql": sql[0].decode()}))[0]

    first, again = on_one_connection(pg_store, work)
    assert again and again != first
