"""Running cases: the service the HTTP layer and the command line call.

:class:`CaseService` ties the pieces together for each operation, inside one
unit of work: it loads the case, hands its plain state to the procedure
version's compiled machine, writes back the steps that changed, and appends
the audit events (hash-chained, each signed) in the same transaction.
Starting, acting and withdrawing are here; the rest is in a module per
concept, whose classes it is made of: the reads (:mod:`engine.case_queries`),
idempotency keys (:mod:`engine.idempotency`), a change's plan and its
writes (:mod:`engine.changes`) and the signed-in path
(:mod:`engine.signed_in`); the compiled versions are :mod:`engine.compiled`.

Every method works in the transaction its caller gives it (``db``: a
:meth:`~engine.store.Store.direct`, or for the reads a
:meth:`~engine.store.Store.reading`; ``uow`` for the ORM reads), which the
caller commits: a request, a command, a test decides what one transaction
holds (the sign-in and the change, for instance), never the service. The
audit's verification alone reads the database on its own, a batch at a
time (:func:`engine.verify.verify_database`).

Concurrency is optimistic: the case row's ``version`` guards every update,
so of two officials acting on one case at once only one commits on a given
version. The other gets :class:`~engine.errors.StaleCase` when it named the
version it saw (``If-Match``); without one, its action is re-checked and
re-applied on the fresh state, which may then refuse it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from procedures.messages import t

from .audit import GENESIS
from .calendar import WorkingCalendar
from .changes import Change, seal_entries
from .compiled import Compiled
from .direct import Direct
from .errors import Abolished, FieldProblem, InvalidData
from .idempotency import Idempotency
from .keys import Keyring, Signer, Verifier
from .machine import Actor, CaseState, CompiledProcedure, Entry
from .rows import CLOSE_CHAIN, INSERT_CASE, INSERT_EVENT, INSERT_STEP, USER_EXISTS, event_columns, step_columns
from .signed_in import SignedInChanges
from .store import Store
from .verify import AuditReport, verify_database
from .views import CaseView, StoredResponse
from .writing import writing_for


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CaseService(SignedInChanges):
    """Start, act on, withdraw and read cases (see the module's description)."""

    def __init__(
        self,
        store: Store,
        *,
        signer: Signer,
        calendar: WorkingCalendar | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        compiled: Compiled | None = None,
        idempotency_lease: float = 60.0,
    ) -> None:
        self.store = store
        self.idempotency_lease = idempotency_lease
        self.signer = signer
        if store.signer is None:
            store.signer = signer  # the journal's changes are signed with the key the events are
        self.calendar = calendar or WorkingCalendar()
        self.clock = clock
        self.compiled = compiled or Compiled()
        self.writing = writing_for(store.dialect)

    # -- changing -------------------------------------------------------------------
    def start(
        self,
        actor: Actor,
        *,
        code: str,
        unit: str,
        data: Any,
        applicant: str | None = None,
        db: Direct,
    ) -> CaseView:
        """A new case on the newest published version of ``code``, in
        ``db`` (a writing :meth:`Store.direct`, which its caller commits).

        ``applicant`` (the actor when not given) must be an existing user,
        read in the start's own transaction: else a user created later under
        that id would inherit the case. The actor itself is taken as one
        (the service's callers have just signed it in).

        Raises:
            NotPublished: no published version of ``code``.
            Abolished: its newest published version abolishes it.
            InvalidData: ``data`` breaks the procedure's fields, or
                ``applicant`` is no user (the problem of field ``applicant``).
        """
        now = self.clock()
        if applicant is not None and applicant != actor.id and db.scalar(USER_EXISTS, {"b_user": applicant}) is None:
            no_user = t("the applicant “{applicant}” is no user of the system", applicant=applicant)
            raise InvalidData([FieldProblem("applicant", no_user, "no-user")])
        proc_id = self._newest_published(db, code)
        machine = self.compiled.on(proc_id, db)
        defn = machine.definition
        if defn.abolished is not None:
            raise Abolished(defn.code, defn.abolished, defn.merged_into)
        state, entries = machine.start(
            data=data, unit=unit, applicant=applicant or actor.id, actor=actor, now=now, calendar=self.calendar
        )
        case_id = db.scalar(
            INSERT_CASE,
            {
                "procedure_id": proc_id,
                "code": defn.code,
                "procedure_version": defn.version,
                "unit": unit,
                "applicant": state.applicant,
                "status": state.status,
                "data": state.data,
                "created_at": state.created_at,
                "due_at": state.due_at,
                "paused_since": None,
                "guided": None,
                "version": 1,
                "event_count": 0,
                "head_hash": GENESIS,
            },
        )
        db.many(
            INSERT_STEP,
            [
                {
                    "case_id": case_id,
                    "position": i,
                    "step_id": step.id,
                    "role": step.role,
                    "role_kind": machine.role_kind[i],
                    "unit": unit,
                    "applicant": state.applicant,
                    **step_columns(s),
                }
                for i, (step, s) in enumerate(zip(defn.steps, state.steps, strict=True))
            ],
        )
        # the events hash the case's id, which the insert has just given
        records = seal_entries(case_id, GENESIS, 0, entries, self.signer)
        db.many(INSERT_EVENT, [event_columns(r) for r in records])
        db.run(CLOSE_CHAIN, {"b_case": case_id, "event_count": len(records), "head_hash": records[-1].hash})
        return CaseView.of_state(case_id, defn.code, defn.version, 1, state, machine, now=now)

    def act(
        self,
        actor: Actor,
        case_id: int,
        *,
        step: str,
        outcome: str,
        comment: str | None = None,
        missing: Iterable[str] = (),
        data: Mapping[str, Any] | None = None,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        db: Direct,
    ) -> CaseView | StoredResponse:
        """Take ``outcome`` on ``step`` of the case, in ``db`` (a writing
        :meth:`Store.direct`, which its caller commits).

        With ``idempotency``, the first request under its key is applied and
        its response stored in the same transaction; a repeat with the same
        request gets that :class:`StoredResponse` back instead.

        Raises:
            NotFound: no such case, or ``actor`` may not see it.
            IdempotencyMismatch, IdempotencyInFlight: see :meth:`_take_key`.
            StaleCase: ``if_match`` is not the case's current version.
            InvalidAction, Forbidden, CaseClosed, StepNotActive, GuideOnce,
            InvalidData: as :meth:`CompiledProcedure.act`.
        """
        change = self.acting(actor, step=step, outcome=outcome, comment=comment, missing=missing, data=data)
        return self.change(actor, case_id, change, if_match=if_match, idempotency=idempotency, db=db)

    def acting(
        self,
        actor: Actor,
        *,
        step: str,
        outcome: str,
        comment: str | None = None,
        missing: Iterable[str] = (),
        data: Mapping[str, Any] | None = None,
    ) -> Change:
        """What :meth:`act` does to the case's state (for :meth:`prepare`)."""
        missing = tuple(missing)

        def change(machine: CompiledProcedure, state: CaseState, now: dt.datetime) -> list[Entry]:
            return machine.act(
                state,
                step=step,
                outcome=outcome,
                actor=actor,
                now=now,
                calendar=self.calendar,
                comment=comment,
                missing=missing,
                data=data,
            )

        return change

    def withdraw(
        self,
        actor: Actor,
        case_id: int,
        *,
        comment: str | None = None,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        db: Direct,
    ) -> CaseView | StoredResponse:
        """The applicant withdraws an open case (in ``db`` as :meth:`act`).

        Raises:
            NotFound, StaleCase, Forbidden, CaseClosed.
        """
        change = self.withdrawing(actor, comment=comment)
        return self.change(actor, case_id, change, if_match=if_match, idempotency=idempotency, db=db)

    def withdrawing(self, actor: Actor, *, comment: str | None = None) -> Change:
        """What :meth:`withdraw` does to the case's state (for :meth:`prepare`)."""

        def change(machine: CompiledProcedure, state: CaseState, now: dt.datetime) -> list[Entry]:
            return machine.withdraw(state, actor=actor, now=now, calendar=self.calendar, comment=comment)

        return change

    # -- audit ------------------------------------------------------------------------
    def verify_audit(self, verifier: Verifier | Keyring | None = None, *, checkpoint: str | None = None) -> AuditReport:
        """Check everything the audit keeps (see :func:`engine.verify.verify_database`)."""
        keys = verifier if isinstance(verifier, Keyring) else Keyring([verifier or self.signer.verifier()])
        return verify_database(self.store, keys, checkpoint=checkpoint, calendar=self.calendar)


__all__ = ["CaseService", "utcnow"]
