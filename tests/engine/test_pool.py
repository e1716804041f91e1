"""PostgreSQL's pooled connections are checked only after lying idle
(engine.connection._ping_when_idle, and AsyncStatements for the asyncio ones): one
whose server process went away meanwhile is replaced before use; one in use
a moment ago is not checked, and if it turns out dead its transaction fails
once and the pool replaces it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, func, select, text

from engine import connection as engine_db
from engine.direct import Statement
from engine.store import AsyncStatements, Store

BACKEND = Statement(select(func.pg_backend_pid()))


@pytest.fixture
def pg_store(postgres_server: str) -> Iterator[Store]:
    store = Store(postgres_server, pool_size=1, max_overflow=0)
    yield store
    store.dispose()


def backend(store: Store) -> int:
    with store.direct(write=False) as db:
        pid: int = db.scalar(BACKEND, {})
        return pid


def terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()


def test_an_idle_connection_is_checked_and_replaced_when_dead(
    pg_store: Store, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend(pg_store)
    terminate(postgres_server, first)
    monkeypatch.setattr(engine_db, "IDLE_PING_SECONDS", 0.0)  # it has lain idle long enough
    second = backend(pg_store)  # no error: the check found it dead and the pool opened another
    assert second != first
    with pg_store.unit(write=False) as uow:  # the ORM's connections go through the same check
        assert uow.connection.execute(text("SELECT 1")).scalar() == 1


def test_a_connection_used_a_moment_ago_is_not_checked(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    real = pg_store.engine.dialect.do_ping
    monkeypatch.setattr(pg_store.engine.dialect, "do_ping", lambda conn: pings.append(conn) or real(conn))
    backend(pg_store)
    backend(pg_store)
    assert pings == []
    monkeypatch.setattr(engine_db, "IDLE_PING_SECONDS", 0.0)
    backend(pg_store)
    assert len(pings) == 1


def test_a_dead_connection_used_a_moment_ago_fails_once_then_is_replaced(pg_store: Store, postgres_server: str) -> None:
    first = backend(pg_store)
    terminate(postgres_server, first)
    with pytest.raises(psycopg.OperationalError):
        backend(pg_store)
    assert backend(pg_store) != first


# -- the asyncio pool of the service's plain case actions (engine.store.AsyncStatements)
def _backends(store: Store, work: list[str]) -> list[int | str]:
    """On one event loop and a pool of one connection: the server process
    of each statement run in turn, ``"ping"`` in ``work`` runs one, and
    ``"kill"`` terminates the last one's; a statement that failed is ``"failed: ..."``."""

    async def run() -> list[int | str]:
        statements = AsyncStatements(store, 1)
        await statements.open()
        out: list[int | str] = []
        try:
            for step in work:
                if step == "kill":
                    terminate(store.url, next(p for p in reversed(out) if isinstance(p, int)))
                    continue
                try:
                    async with statements.statements() as db:
                        out.append(int((await db.one(BACKEND, {}))[0]))
                except psycopg.OperationalError as exc:
                    out.append(f"failed: {type(exc).__name__}")
        finally:
            await statements.close()
        return out

    return asyncio.run(run())


def test_an_idle_asyncio_connection_is_checked_and_replaced_when_dead(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_db, "IDLE_PING_SECONDS", 0.0)  # every connection has lain idle long enough
    first, second = _backends(pg_store, ["ping", "kill", "ping"])
    assert isinstance(second, int) and second != first


def test_an_asyncio_connection_used_a_moment_ago_is_not_checked(pg_store: Store) -> None:
    first, failed, second = _backends(pg_store, ["ping", "kill", "ping", "ping"])
    assert str(failed).startswith("failed")  # the statements running as the server went away fail once
    assert isinstance(second, int) and second != first
