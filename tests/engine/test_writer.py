"""The writer thread (engine.writer): works that queue up meanwhile share a
transaction, a refused one leaves nothing behind, nobody hears of success
before the commit, and a failed commit fails the whole group."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select

from engine.db import UserRow
from engine.direct import Direct, Statement
from engine.store import Store
from engine.writer import GroupWriter

USERS = UserRow.__table__
ADD_USER = Statement(insert(USERS))
USER_IDS = Statement(select(USERS.c.id).where(USERS.c.unit == bindparam("b_unit")).order_by(USERS.c.id))
MOMENT = dt.datetime(2027, 2, 4, 1, 30, tzinfo=dt.UTC)


def add(user_id: str) -> Any:
    def work(db: Direct) -> tuple[str, Direct]:
        db.run(ADD_USER, {"id": user_id, "name": user_id, "unit": "w", "roles": [], "permissions": [], "created_at": MOMENT})
        return user_id, db  # kept, so that no two transactions' objects can share an id

    return work


def refuse(user_id: str) -> Any:
    def work(db: Direct) -> None:
        add(user_id)(db)
        raise LookupError(f"{user_id} refused after writing")

    return work


class Outcomes:
    """What the writer told each work, by the order they were queued."""

    def __init__(self, count: int) -> None:
        self.told: dict[int, tuple[bool, Any]] = {}
        self.all_told = threading.Semaphore(0)
        self.count = count

    def done(self, n: int) -> Any:
        def tell(ok: bool, value: Any) -> None:
            self.told[n] = (ok, value)
            self.all_told.release()

        return tell

    def wait(self) -> list[tuple[bool, Any]]:
        for _ in range(self.count):
            assert self.all_told.acquire(timeout=20), "the writer did not answer"
        return [self.told[n] for n in range(self.count)]


def stored(store: Store) -> list[str]:
    with store.direct(write=False) as db:
        return [r.id for r in db.all(USER_IDS, {"b_unit": "w"})]


@contextlib.contextmanager
def held_writer(store: Store) -> Iterator[tuple[GroupWriter, threading.Event]]:
    """A writer whose first work waits for the event, so that what is
    submitted meanwhile queues up and goes as one group."""
    writer = GroupWriter(store)
    go, busy = threading.Event(), threading.Event()

    def wait(db: Direct) -> None:
        busy.set()
        assert go.wait(timeout=20)

    writer.submit(wait, lambda ok, value: None)
    assert busy.wait(timeout=20)
    try:
        yield writer, go
    finally:
        go.set()
        writer.close()


def test_works_queued_meanwhile_share_a_transaction_and_a_refused_one_leaves_nothing(store: Store) -> None:
    outcomes = Outcomes(4)
    with held_writer(store) as (writer, go):
        for n, work in enumerate([add("a"), refuse("b"), add("c"), add("d")]):
            writer.submit(work, outcomes.done(n))
        assert outcomes.told == {}  # not before the commit
        go.set()
        told = outcomes.wait()
    assert [ok for ok, _ in told] == [True, False, True, True]
    assert isinstance(told[1][1], LookupError)
    assert len({id(told[n][1][1]) for n in (0, 2, 3)}) == 1, "the group ran in one transaction"
    assert stored(store) == ["a", "c", "d"]


def test_a_failed_commit_fails_every_work_of_the_group(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.direct

    @contextlib.contextmanager
    def commit_fails(*, write: bool = True) -> Iterator[Direct]:
        with real(write=write) as db:
            yield db
            raise OSError("disk full")  # the block's end, where the commit would be: rolled back instead

    outcomes = Outcomes(3)
    with held_writer(store) as (writer, go):
        monkeypatch.setattr(store, "direct", commit_fails)
        for n, work in enumerate([add("a"), refuse("b"), add("c")]):
            writer.submit(work, outcomes.done(n))
        go.set()
        told = outcomes.wait()
    monkeypatch.undo()
    assert [ok for ok, _ in told] == [False, False, False]
    assert [type(v).__name__ for _, v in told] == ["OSError", "LookupError", "OSError"]
    assert stored(store) == []


def test_a_work_alone_is_its_own_transaction_and_the_writer_outlives_a_bad_callback(store: Store) -> None:
    writer = GroupWriter(store)
    try:
        outcomes = Outcomes(1)

        def bad_callback(ok: bool, value: Any) -> None:
            raise RuntimeError("the caller's callback fails")

        writer.submit(refuse("b"), outcomes.done(0))
        writer.submit(add("a"), bad_callback)
        later = Outcomes(1)
        writer.submit(add("c"), later.done(0))
        assert outcomes.wait()[0][0] is False
        assert later.wait()[0][0] is True
    finally:
        writer.close()
    assert stored(store) == ["a", "c"]


def test_close_runs_what_is_queued_first(store: Store) -> None:
    outcomes = Outcomes(5)
    with held_writer(store) as (writer, go):
        for n in range(5):
            writer.submit(add(f"u{n}"), outcomes.done(n))
        go.set()
        writer.close()
    assert [ok for ok, _ in outcomes.wait()] == [True] * 5
    assert stored(store) == [f"u{n}" for n in range(5)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(add("late"), outcomes.done(5))


class Abort(BaseException):
    """Not an Exception: what a careless work might raise."""


def test_a_work_raising_past_exception_fails_its_group_and_the_writer_goes_on(store: Store) -> None:
    def aborts(db: Direct) -> None:
        add("b")(db)
        raise Abort

    outcomes = Outcomes(3)
    with held_writer(store) as (writer, go):
        for n, work in enumerate([add("a"), aborts, add("c")]):
            writer.submit(work, outcomes.done(n))
        go.set()
        told = outcomes.wait()
        assert [type(v).__name__ for _, v in told] == ["Abort"] * 3
        after = Outcomes(1)
        writer.submit(add("d"), after.done(0))
        assert after.wait()[0][0] is True
    assert stored(store) == ["d"]


def test_aheads_are_worked_out_first_in_one_reading_transaction_and_a_refused_one_is_answered_alone(store: Store) -> None:
    read: list[tuple[str, list[str]]] = []

    def ahead_of(user_id: str) -> Any:
        def ahead(db: Direct) -> tuple[str, Direct]:
            read.append((user_id, [r.id for r in db.all(USER_IDS, {"b_unit": "w"})]))
            return user_id.upper(), db

        return ahead

    def refused_ahead(db: Direct) -> None:
        raise LookupError("refused before the write")

    def work(db: Direct, worked_out: tuple[str, Direct]) -> tuple[str, Direct, Direct]:
        name, reading = worked_out
        add(name)(db)
        return name, reading, db

    outcomes = Outcomes(4)
    with held_writer(store) as (writer, go):
        writer.submit(work, outcomes.done(0), ahead_of("a"))
        writer.submit(work, outcomes.done(1), refused_ahead)
        writer.submit(add("c"), outcomes.done(2))  # one without an ahead, in the same group
        writer.submit(work, outcomes.done(3), ahead_of("d"))
        go.set()
        told = outcomes.wait()
    assert [ok for ok, _ in told] == [True, False, True, True]
    assert isinstance(told[1][1], LookupError)
    assert read == [("a", []), ("d", [])]  # both before any of the group's writes
    (_, reading_a, writing_a), (_, writing_c), (_, reading_d, writing_d) = told[0][1], told[2][1], told[3][1]
    assert reading_a is reading_d and writing_a is writing_c is writing_d and reading_a is not writing_a
    assert stored(store) == ["A", "D", "c"]
