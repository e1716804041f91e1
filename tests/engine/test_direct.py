"""Statements run straight on the DB-API connection (engine.direct) read and
write exactly what SQLAlchemy's own execution would, on both databases."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import DateTime, bindparam, event, insert, select, update
from sqlalchemy.dialects import sqlite

from engine.db import NO_DUE, UserRow, UTCDateTime
from engine.direct import Statement
from engine.schema import upgrade
from engine.store import Store

USERS = UserRow.__table__
HANOI = dt.timezone(dt.timedelta(hours=7))
ADD_USER = Statement(insert(USERS), keys=("id", "name", "unit", "roles", "permissions", "created_at"))
READ_USER = Statement(select(USERS).where(USERS.c.id == bindparam("b_id")))
RENAME = Statement(update(USERS).where(USERS.c.id == bindparam("b_id")).values(name=bindparam("name")))


def user(i: int, created: dt.datetime) -> dict[str, Any]:
    return {"id": f"u{i}", "name": f"Người {i}", "unit": "d1", "roles": ["cb", "tp"], "permissions": [], "created_at": created}


def test_what_direct_writes_sqlalchemy_reads_back_and_the_reverse(store: Store) -> None:
    moment = dt.datetime(2027, 2, 4, 8, 30, 0, 123456, tzinfo=HANOI)
    with store.direct() as db:
        db.many(ADD_USER, [user(1, moment), user(2, moment.astimezone(dt.UTC))])
    with store.unit() as uow:
        rows = uow.session.query(UserRow).order_by(UserRow.id).all()
        assert [(r.name, r.roles, r.created_at) for r in rows] == [
            ("Người 1", ["cb", "tp"], moment),
            ("Người 2", ["cb", "tp"], moment),
        ]
        assert rows[0].created_at.tzinfo == dt.UTC
        uow.session.add(UserRow(id="u3", name="Ba", unit="d2", roles=[], permissions=["admin"], created_at=NO_DUE))
    with store.direct(write=False) as db:
        three = db.one(READ_USER, {"b_id": "u3"})
        assert three.roles == [] and three.permissions == ["admin"]
        assert three.created_at == NO_DUE and three.created_at.tzinfo == dt.UTC
        assert db.one(READ_USER, {"b_id": "nobody"}) is None
        assert db.scalar(READ_USER, {"b_id": "u1"}) == "u1"


def test_a_block_that_raises_leaves_nothing_and_a_write_counts_its_rows(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(RuntimeError), store.direct() as db:
        db.run(ADD_USER, user(1, now))
        raise RuntimeError("refused half-way")
    with store.direct() as db:
        assert db.one(READ_USER, {"b_id": "u1"}) is None
        db.run(ADD_USER, user(1, now))
        assert db.run(RENAME, {"b_id": "u1", "name": "Một"}) == 1
        assert db.run(RENAME, {"b_id": "u9", "name": "Chín"}) == 0
    with store.unit(write=False) as uow:
        assert uow.user("u1").name == "Một"


def test_parameters_held_by_the_statement_and_the_trace(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    newest = Statement(select(USERS.c.id).where(USERS.c.unit == "d1").order_by(USERS.c.id.desc()).limit(bindparam("size", 2)))
    seen: list[tuple[str, Any]] = []
    store.trace = lambda sql, parameters: seen.append((sql, parameters))
    with store.direct() as db:
        db.many(ADD_USER, [user(i, now) for i in range(1, 5)])
        assert [r.id for r in db.all(newest, {})] == ["u4", "u3"]
        assert [r.id for r in db.all(newest, {"size": 3})] == ["u4", "u3", "u2"]
    assert len(seen) == 3 and seen[0][0].startswith("INSERT INTO users") and len(seen[0][1]) == 4
    sizes = [p["size"] if isinstance(p, dict) else p[1] for _, p in seen[1:]]  # pyformat, or qmark (unit, size, offset)
    assert sizes == [2, 3]


def test_a_missing_parameter_is_named_and_a_list_parameter_is_refused(store: Store) -> None:
    with pytest.raises(KeyError, match="b_id"), store.direct() as db:
        db.one(READ_USER, {})
    listed = Statement(select(USERS.c.id).where(USERS.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="ids: expanding"), store.direct() as db:
        db.all(listed, {"ids": ["u1"]})


def test_instants_on_sqlite_are_the_text_sqlalchemy_writes() -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    back = UTCDateTime().result_processor(dialect, None)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    for moment in (
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 4, 30, 7, 0, 0, 5, tzinfo=HANOI),
        NO_DUE,
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ):
        stored = ours(moment)
        assert stored == theirs(moment.astimezone(dt.UTC).replace(tzinfo=None))
        assert back(stored) == moment and back(stored).tzinfo == dt.UTC
    with pytest.raises(ValueError, match="naive"):
        ours(dt.datetime(2027, 1, 1))


def test_sqlite_writers_queue_at_the_gate_across_stores(tmp_path: Any) -> None:
    # Two stores on one file stand for two worker processes: each has its own
    # lock-file descriptor, so flock keeps them apart as it would processes.
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    first, second = Store(url), Store(url)
    upgrade(first.engine)

    # Without the gate the second writer would meet SQLite's own lock, and with
    # no busy timeout fail at once ("database is locked"); queued at the gate,
    # it never meets it.
    @event.listens_for(second.engine, "connect")
    def impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    order: list[str] = []
    inside = threading.Event()

    def hold() -> None:
        with first.direct() as db:
            db.run(ADD_USER, user(1, dt.datetime.now(dt.UTC)))
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    with second.unit() as uow:
        order.append("second in")
        assert uow.user("u1").name == "Người 1"  # it saw the first one's commit: it waited for it
    holder.join()
    assert order == ["first done", "second in"]
    assert (tmp_path / "gate.db-writer.lock").exists()
    with second.direct(write=False) as db:  # readers do not queue
        assert db.one(READ_USER, {"b_id": "u1"}) is not None
    first.dispose()
    second.dispose()


def test_a_write_nested_in_another_on_one_thread_fails_instead_of_hanging(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested.db'}")
    upgrade(store.engine)

    @event.listens_for(store.engine, "connect")
    def impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with store.unit() as uow:
        uow.user_count()
        with pytest.raises(sqlite3.OperationalError, match="locked"), store.direct() as db:
            db.run(ADD_USER, user(1, dt.datetime.now(dt.UTC)))
    with store.direct() as db:  # the gate is free again
        db.run(ADD_USER, user(2, dt.datetime.now(dt.UTC)))
    store.dispose()
