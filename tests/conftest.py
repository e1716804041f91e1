"""Shared test helpers: where ../shared is, small definitions in text, and
databases.

``store`` runs a test on SQLite and on PostgreSQL. PostgreSQL is the
server at 127.0.0.1:5432 (database ``test``, user ``postgres``, or
``$TINHGON_TEST_POSTGRES``); each test run creates a database of its own
there and drops it at the end. Without a server the PostgreSQL half is
skipped with the reason, except in CI (``$CI`` set), where it fails: CI
must run it.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from engine.keys import Signer
from engine.schema import upgrade
from engine.store import Store
from procedures.messages import ENVIRONMENT, speaking

# In CI the property tests run the same examples every time, so a run's
# verdict is about the change, not the dice; locally they explore afresh.
# No deadline either way: these machines are shared, and a slow example on
# a loaded machine says nothing about the code (benchmarks measure speed).
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFINITIONS = ROOT / "definitions"
POSTGRES = os.environ.get("TINHGON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read the shared fixtures from ../shared beside the project")
    return path


HEAD = """\
format: tinhgon/1
code: T-1
name: Thủ tục thử
version: 1
"""


def definition_text(body: str, head: str = HEAD) -> str:
    """A definition: the standard head plus ``body`` (dedented)."""
    return head + textwrap.dedent(body)


@pytest.fixture(autouse=True)
def _default_key_of_the_test(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run without ``--key-file`` uses (and may create) a key of
    the test's own, never ``tinhgon-signing.key`` in the working directory."""
    monkeypatch.setenv("TINHGON_SIGNING_KEY", str(tmp_path_factory.mktemp("key") / "tinhgon-signing.key"))


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """English, as asked for explicitly: in this thread's context and for the
    command line ($TINHGON_LANG). For tests about what a message says, written
    against its English wording; the Vietnamese default has tests of its own."""
    monkeypatch.setenv(ENVIRONMENT, "en")
    with speaking("en"):
        yield


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
def store(database_url: str, signer: Signer) -> Iterator[Store]:
    """A migrated database, SQLite and PostgreSQL in turn, whose journal the test key signs."""
    s = Store(database_url)
    s.signer = signer
    upgrade(s.engine)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.generate()
