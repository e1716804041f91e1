"""How a case change is read and written on each kind of database: one
class per database, chosen once per service by the store's dialect
(:func:`writing_for`), and used by every change path alike (a change in
one transaction, one worked out ahead, the signed-in path; see
:mod:`engine.changes` and :mod:`engine.signed_in`).

SQLite, where a statement costs no round trip, reads a case and its steps
in two statements and writes a change in one statement per part: the
version-guarded case update first, then the step rows, the events and the
answer under the idempotency key. PostgreSQL reads a case with its steps in
one statement (claiming the key in it too) and writes a change in one
statement whose every part is conditioned on the guarded update
(:func:`engine.rows.write_change`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .audit import EventRecord
from .direct import Direct, Statement
from .heads import CaseHead
from .machine import CaseState
from .rows import (
    ANSWER_KEY,
    CLAIM_KEY,
    INSERT_EVENT,
    READ_CASE,
    READ_CASE_STEPS,
    READ_STEPS,
    KeyWrite,
    changed_steps,
    event_columns,
    event_rows,
    key_lock,
    step_changes,
    steps_read,
    update_case,
    update_step,
    write_change,
)

if TYPE_CHECKING:
    from .idempotency import Idempotency

Writes = list[tuple[Statement, Any]]
"""A change's statements and their values (a list of rows for a statement run once a row)"""


@dataclass(frozen=True, slots=True)
class Worked:
    """A change worked out, as the writes need it."""

    guarded: dict[str, Any]
    """the case row's new columns, with ``b_case`` and the version it was worked out on (``b_version``)"""
    changed: tuple[str, ...]
    """the case's state columns that change"""
    step_rows: list[Any]
    state: CaseState
    records: list[EventRecord]
    answer: dict[str, Any] | None
    """the answer stored under the idempotency key, if any"""
    idempotency: Idempotency | None
    claimed: bool
    """whether the key was claimed before (else, PostgreSQL's signed-in path, it is stored with the answer)"""
    now: dt.datetime


class Writing:
    """What differs between the databases in reading and writing a change."""

    dialect: ClassVar[str]
    case_read: ClassVar[Statement]
    """how a case is read for a change or to be shown"""
    claims_with_read: ClassVar[bool]
    """whether a change's first read also claims its idempotency key"""

    def steps(self, db: Direct | None, head: CaseHead) -> list[Any]:
        """The step rows (of :data:`~engine.rows.READ_STEPS`) of a case read by :attr:`case_read`."""
        raise NotImplementedError

    def claim(self, user_id: str, idempotency: Idempotency, now: dt.datetime) -> dict[str, Any]:
        """The parameters of the key's claim (:data:`~engine.rows.CLAIM_KEY`)."""
        return {"b_user": user_id, "b_key": idempotency.key, "request_hash": idempotency.request_hash, "created_at": now}

    @property
    def claim_key(self) -> Statement:
        return CLAIM_KEY[self.dialect]

    def writes(self, worked: Worked) -> Writes:
        """What to write for a change: the version-guarded update first."""
        raise NotImplementedError

    def write(self, db: Direct, writes: Writes) -> bool:
        """``writes``, unless the case moved on from the version they were
        worked out on (False: then nothing is written)."""
        raise NotImplementedError


class SQLiteWriting(Writing):
    dialect = "sqlite"
    case_read = READ_CASE
    claims_with_read = False

    def steps(self, db: Direct | None, head: CaseHead) -> list[Any]:
        assert db is not None, "SQLite reads the steps on their own"
        return db.all(READ_STEPS, {"b_case": head.id})

    def writes(self, worked: Worked) -> Writes:
        w = worked
        writes: Writes = [(update_case(w.changed), w.guarded)]
        steps = step_changes(w.guarded["b_case"], w.step_rows, w.state.steps)
        writes += [(update_step(columns), rows) for columns, rows in steps.items()]
        writes.append((INSERT_EVENT, [event_columns(r) for r in w.records]))
        if w.answer is not None:
            writes.append((ANSWER_KEY[self.dialect], w.answer))
        return writes

    def write(self, db: Direct, writes: Writes) -> bool:
        (guard, guarded), *rest = writes
        if db.run(guard, guarded) != 1:
            return False
        for statement, values in rest:
            if isinstance(values, list):  # a row each
                db.many(statement, values)
            else:
                db.run(statement, values)
        return True


class PostgreSQLWriting(Writing):
    dialect = "postgresql"
    case_read = READ_CASE_STEPS
    claims_with_read = True

    def steps(self, db: Direct | None, head: CaseHead) -> list[Any]:
        return steps_read(head)

    def claim(self, user_id: str, idempotency: Idempotency, now: dt.datetime) -> dict[str, Any]:
        # the claim takes the key's advisory lock first
        return {**super().claim(user_id, idempotency, now), "lock": key_lock(user_id, idempotency.key)}

    def writes(self, worked: Worked) -> Writes:
        w = worked
        key_write: KeyWrite = None
        answer = dict(w.answer) if w.answer is not None else None
        if answer is not None and w.idempotency is not None:
            key_write = "fill" if w.claimed else "insert"
            if not w.claimed:
                lock = key_lock(answer["b_user"], w.idempotency.key)
                answer.update(request_hash=w.idempotency.request_hash, created_at=w.now, lock=lock)
        everything = {**w.guarded, **changed_steps(w.step_rows, w.state.steps), **event_rows(w.records), **(answer or {})}
        return [(write_change(w.changed, key_write), everything)]

    def write(self, db: Direct, writes: Writes) -> bool:
        ((statement, values),) = writes  # one statement, each part conditioned on the guarded update
        return bool(db.scalar(statement, values) == 1)


def writing_for(dialect: str) -> Writing:
    """The way of reading and writing changes of the database ``dialect`` (``sqlite`` or ``postgresql``)."""
    return {"sqlite": SQLiteWriting, "postgresql": PostgreSQLWriting}[dialect]()
