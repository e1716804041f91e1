"""A change to a case, worked out as a plan and then written: in one
transaction (:meth:`CaseChanges.change`), or worked out ahead in a reading
transaction and written in the writing one (:meth:`CaseChanges.prepare`,
:meth:`CaseChanges.commit`). Concurrency is optimistic: the case row's
``version`` guards every update."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from procedures.messages import t

from .audit import EventRecord, format_at, seal
from .case_queries import CaseQueries
from .direct import Direct, Statement
from .errors import EngineError, StaleCase
from .heads import CaseHead, ClaimingHead
from .idempotency import Idempotency, IdempotencyKeys
from .keys import Signer
from .machine import Actor, CaseState, CompiledProcedure, Entry
from .rows import READ_CASE_STEPS, READ_CASE_STEPS_CLAIM, case_changes, state_from
from .views import CaseView, StoredResponse
from .writing import Worked

RETRIES = 8
"""How often an action without ``If-Match`` is re-applied after losing a race."""


def seal_entries(case_id: int, prev: str, seq: int, entries: list[Entry], signer: Signer) -> list[EventRecord]:
    """The audit events of one change, chained on from ``prev`` (after event ``seq``)."""
    records = []
    for entry in entries:
        seq += 1
        record = seal(
            case_id=case_id,
            seq=seq,
            at=format_at(entry.at),
            actor=entry.actor,
            type=entry.type,
            step=entry.step,
            outcome=entry.outcome,
            comment=entry.comment,
            data=dict(entry.details),
            decision=entry.decision,
            prev_hash=prev,
            signer=signer,
        )
        records.append(record)
        prev = record.hash
    return records


Change = Callable[[CompiledProcedure, CaseState, dt.datetime], list[Entry]]
"""What a case action or withdrawal does to the case's state"""


@dataclass(slots=True)
class _Plan:
    """A change worked out: the case it makes, and its writes, the first of
    them the update guarded by the version it was worked out on."""

    view: CaseView
    writes: list[tuple[Statement, Any]]


@dataclass(slots=True)
class Prepared:
    """A case change worked out ahead of its write (see :meth:`CaseService.prepare`)."""

    actor: Actor
    case_id: int
    if_match: int | None
    change: Change
    idempotency: Idempotency | None
    plan: _Plan | None = None
    """None: refused ahead, to be worked out again in the writing transaction"""


class CaseChanges(CaseQueries, IdempotencyKeys):
    """The change paths of :class:`~engine.cases.CaseService`."""

    def prepare(
        self,
        actor: Actor,
        case_id: int,
        change: Change,
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        db: Direct,
    ) -> Prepared:
        """A change (:meth:`acting` or :meth:`withdrawing`) worked out ahead
        in ``db``, a reading transaction, so that the writing one only claims
        the key and writes (:meth:`commit`).

        Raises:
            as :meth:`act` without ``idempotency``; with it, a refusal is
            left to :meth:`commit`, since a repeat of an accepted request
            gets the first answer instead.
        """
        ahead = Prepared(actor, case_id, if_match, change, idempotency)
        try:
            head, machine = self._head(db, ahead.case_id, ahead.actor, self.writing.case_read)
            ahead.plan = self._plan(db, ahead.actor, head, machine, ahead.if_match, ahead.change, ahead.idempotency)
        except EngineError:
            if ahead.idempotency is None:
                raise
            # a repeat of an accepted request is answered from its key: left to commit
        return ahead

    def commit(self, db: Direct, ahead: Prepared) -> CaseView | StoredResponse:
        """The change :meth:`prepare` worked out, in ``db`` (the writing transaction): the key claimed,
        then the writes, guarded by the case's version as read ahead. A case
        that moved on meanwhile, or whose change was refused ahead, is read
        and changed afresh here, as :meth:`act` would have.

        Raises:
            as :meth:`act`.
        """
        if ahead.plan is None:
            return self.change(
                ahead.actor, ahead.case_id, ahead.change, if_match=ahead.if_match, idempotency=ahead.idempotency, db=db
            )
        if ahead.idempotency is not None:
            stored = self._take_key(db, ahead.actor, ahead.idempotency, self.clock())
            if stored is not None:
                return stored
        if self._write(db, ahead.plan):
            return ahead.plan.view
        head, machine = self._head(db, ahead.case_id, ahead.actor, self.writing.case_read)
        return self._applying(db, ahead.actor, head, machine, ahead.if_match, ahead.change, ahead.idempotency)

    def change(
        self,
        actor: Actor,
        case_id: int,
        change: Change,
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        db: Direct,
    ) -> CaseView | StoredResponse:
        """``change`` (:meth:`acting` or :meth:`withdrawing`) in ``db``, a
        writing transaction its caller commits: the case's visibility, the
        idempotency key, then the change. A refusal raises, and the caller's
        rollback takes the key's claim with it, so a retry with the key is
        applied afresh."""
        if self.writing.claims_with_read:
            head, machine, stored = self._head_claiming(db, case_id, actor, idempotency)
        else:
            head, machine = self._head(db, case_id, actor)
            stored = self._take_key(db, actor, idempotency, self.clock()) if idempotency is not None else None
        if stored is not None:
            return stored
        return self._applying(db, actor, head, machine, if_match, change, idempotency)

    def _head_claiming(
        self, db: Direct, case_id: int, actor: Actor, idempotency: Idempotency | None
    ) -> tuple[CaseHead, CompiledProcedure, StoredResponse | None]:
        """PostgreSQL: as :meth:`_head` with :data:`READ_CASE_STEPS`, and the
        key claimed in the same statement; with the stored response when
        the key was used before (see :meth:`_take_key`)."""
        if idempotency is None:
            return (*self._head(db, case_id, actor, READ_CASE_STEPS), None)
        now = self.clock()
        claim = self.writing.claim(actor.id, idempotency, now)
        read, machine = self._head(db, case_id, actor, READ_CASE_STEPS_CLAIM, claim)
        head = cast(ClaimingHead, read)
        stored = None if head.claimed else self._not_claimed(db, actor, idempotency, now)
        return head, machine, stored

    def _applying(
        self,
        db: Direct,
        actor: Actor,
        head: CaseHead,
        machine: CompiledProcedure,
        if_match: int | None,
        change: Change,
        idempotency: Idempotency | None,
    ) -> CaseView:
        """The change applied on ``head``, and again on the case read afresh
        whenever another transaction changed it first."""
        case_id = head.id
        # The hot path of the service: prebuilt statements run on the DB-API
        # connection, since SQLAlchemy's per-execution work cost more than
        # the database work. SQLite: two reads; one guarded case update, one
        # update per set of changed step columns, one insert of the events.
        # PostgreSQL: one read and one write (see engine.rows).
        for attempt in range(RETRIES):
            plan = self._plan(db, actor, head, machine, if_match, change, idempotency)
            if self._write(db, plan):
                return plan.view
            # Another transaction changed the case first (on PostgreSQL; on
            # SQLite, between a change worked out ahead and its write). Each
            # statement of this one sees what has been committed: read the
            # case again.
            if if_match is not None:
                raise StaleCase(
                    t("case {case} changed while this action was applied", case=case_id), case_id=case_id, expected=if_match
                )
            if attempt == RETRIES - 1:
                raise StaleCase(t("case {case} is changing too often; try again", case=case_id), case_id=case_id)
            head, machine = self._head(db, case_id, actor, self.writing.case_read)
        raise AssertionError("unreachable")  # pragma: no cover

    def _plan(
        self,
        db: Direct | None,
        actor: Actor,
        head: CaseHead,
        machine: CompiledProcedure,
        if_match: int | None,
        change: Change,
        idempotency: Idempotency | None,
        *,
        claimed: bool = True,
    ) -> _Plan:
        """The change worked out on ``head`` (its steps read in ``db``): the
        case it makes, and what to write; the answer stored under the key
        claimed before, or (not ``claimed``, PostgreSQL) stored with the key
        itself (see :func:`~engine.rows.write_change`)."""
        case_id = head.id
        if if_match is not None and head.version != if_match:
            raise StaleCase(
                t("case {case} is at version {version}, not {expected}", case=case_id, version=head.version, expected=if_match),
                case_id=case_id,
                expected=if_match,
                actual=head.version,
            )
        step_rows = self._steps(db, head)
        state = state_from(head, step_rows)
        now = self.clock()
        entries = change(machine, state, now)
        records = seal_entries(case_id, head.head_hash, head.event_count, entries, self.signer)
        changed = case_changes(head, state)
        guarded = {
            **changed,
            "b_case": case_id,
            "b_version": head.version,
            "version": head.version + 1,
            "event_count": head.event_count + len(records),
            "head_hash": records[-1].hash if records else head.head_hash,
        }
        view = CaseView.of_state(case_id, head.code, head.procedure_version, head.version + 1, state, machine, now=now)
        answer = None
        if idempotency is not None:
            status_code, response = idempotency.respond(view)
            answer = {"b_user": actor.id, "b_key": idempotency.key, "status_code": status_code, "response": response}
        writes = self.writing.writes(
            Worked(guarded, tuple(changed), step_rows, state, records, answer, idempotency, claimed, now)
        )
        return _Plan(view, writes)

    def _write(self, db: Direct, plan: _Plan) -> bool:
        """The writes of ``plan``, unless the case moved on from the version
        it was worked out on (False: then nothing is written)."""
        return self.writing.write(db, plan.writes)
