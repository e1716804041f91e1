"""Engine test helpers: a fixed clock, actors, and databases.

``store`` runs a test on SQLite and on PostgreSQL. PostgreSQL is the
server at 127.0.0.1:5432 (database ``test``, user ``postgres``, or
``$TINHGON_TEST_POSTGRES``); each test run creates a database of its own
there and drops it at the end. Without a server the PostgreSQL half is
skipped with the reason, except in CI (``$CI`` set), where it fails: CI
must run it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine.audit import Signer
from engine.calendar import TIME_ZONE, WorkingCalendar
from engine.cases import CaseService
from engine.machine import Actor
from engine.schema import upgrade
from engine.store import Store

POSTGRES = os.environ.get("TINHGON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CALENDAR = WorkingCalendar()


def local(*args: int) -> dt.datetime:
    """A local (Asia/Ho_Chi_Minh) instant."""
    return dt.datetime(*args, tzinfo=TIME_ZONE)  # type: ignore[misc]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def office(role: str, unit: str = "u1", *more: str) -> Actor:
    return Actor(f"cb_{role}", unit, frozenset({role, *more}))


def applicant(user: str = "dan", unit: str = "u1") -> Actor:
    return Actor(user, unit)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh database on the PostgreSQL server, for this test run."""
    name = f"tinhgon_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is not there: say so
        admin.dispose()
        reason = f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema yet), on each of the two kinds."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tinhgon.db'}"
    url: str = request.getfixturevalue("postgres_server")
    _reset_postgres(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated database, SQLite and PostgreSQL in turn."""
    s = Store(database_url)
    upgrade(s.engine)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock(local(2027, 3, 1, 8, 0))  # a Monday


@pytest.fixture
def service(store: Store, signer: Signer, clock: Clock) -> CaseService:
    return CaseService(store, signer=signer, calendar=CALENDAR, clock=clock)
