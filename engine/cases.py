"""Running cases: the service the HTTP layer and the command line call.

:class:`CaseService` ties the pieces together for each operation, inside one
unit of work: it loads the case, hands its plain state to the procedure
version's compiled machine, writes back the steps that changed, and appends
the audit events (hash-chained, decisions signed) in the same transaction.

Concurrency is optimistic: the case row's ``version`` guards every update,
so of two officials acting on one case at once only one commits on a given
version. The other gets :class:`~engine.errors.StaleCase` when it named the
version it saw (``If-Match``); without one, its action is re-checked and
re-applied on the fresh state, which may then refuse it.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, tuple_, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from procedures import load_text

from .audit import GENESIS, EventRecord, Signer, Verifier, format_at, seal, verify_all
from .calendar import WorkingCalendar
from .db import NO_DUE, CaseRow, CaseStepRow, EventRow, IdempotencyRow, ProcedureRow, UTCDateTime
from .errors import CaseClosed, Conflict, GuidedReturn, IdempotencyInFlight, IdempotencyMismatch, NotFound, StaleCase
from .machine import OPEN, Actor, CaseState, CompiledProcedure, Entry, StepState
from .store import PUBLISHED, Store, UnitOfWork, content_hash

RETRIES = 8
"""How often an action without ``If-Match`` is re-applied after losing a race."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Compiled:
    """Compiled procedure versions, by database id: each is built once per
    process, on first use, and shared by every case and thread."""

    def __init__(self) -> None:
        self._by_id: dict[int, CompiledProcedure] = {}
        self._lock = threading.Lock()

    def by_id(self, procedure_id: int, uow: UnitOfWork) -> CompiledProcedure:
        """The compiled version with this id; the database is read only the
        first time (an action needs no procedure row once it is compiled)."""
        found = self._by_id.get(procedure_id)
        return found if found is not None else self.get(uow.procedure_by_id(procedure_id))

    def get(self, row: ProcedureRow) -> CompiledProcedure:
        found = self._by_id.get(row.id)
        if found is not None:
            return found
        with self._lock:
            found = self._by_id.get(row.id)
            if found is None:
                if content_hash(row.body) != row.content_hash:
                    raise Conflict(f"procedure {row.code} version {row.version}: stored body does not match its content hash")
                found = CompiledProcedure(load_text(row.body, source=f"{row.code}.v{row.version}"))
                self._by_id[row.id] = found
            return found


class _Lost(Exception):
    """The case moved on between reading it and updating it: try again."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer first given to a request under an idempotency key."""

    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's ``Idempotency-Key``, a digest of the request, and how to
    render the response that a repeat of the request will get back."""

    key: str
    request_hash: str
    respond: Callable[[CaseView], tuple[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class InboxItem:
    case_id: int
    code: str
    version: int
    name: str
    step: str
    step_name: str
    activated_at: dt.datetime | None
    due_at: dt.datetime | None
    overdue: bool
    cursor: str


def _cursor(due_sort: dt.datetime, case_id: int, position: int) -> str:
    raw = json.dumps([due_sort.astimezone(dt.UTC).isoformat(), case_id, position]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(text: str) -> tuple[dt.datetime, int, int]:
    """Raises ValueError on a cursor this service did not write."""
    try:
        due, case_id, position = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        due_at = dt.datetime.fromisoformat(due)
        # checked here, or a forged cursor would reach the database as a naive time or an out-of-range id
        if due_at.tzinfo is None or not all(isinstance(n, int) and 0 <= n < 2**31 for n in (case_id, position)):
            raise ValueError(text)
        return due_at, case_id, position
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a cursor of this list: {text!r}") from exc


class CaseService:
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
        self.calendar = calendar or WorkingCalendar()
        self.clock = clock
        self.compiled = compiled or Compiled()

    # -- reading ------------------------------------------------------------------
    def machine_of(self, uow: UnitOfWork, row: CaseRow) -> CompiledProcedure:
        return self.compiled.by_id(row.procedure_id, uow)

    def can_see(self, uow: UnitOfWork, row: CaseRow, actor: Actor) -> bool:
        return _sees(actor, row.applicant, row.unit, self.machine_of(uow, row))

    def _visible(self, uow: UnitOfWork, case_id: int, actor: Actor) -> CaseRow:
        row = uow.session.get(CaseRow, case_id)
        if row is None or not self.can_see(uow, row, actor):
            raise NotFound(f"no case {case_id}", case_id=case_id)
        return row

    def get(self, actor: Actor, case_id: int) -> CaseView:
        """Raises NotFound when the case does not exist or ``actor`` may not see it."""
        with self.store.unit(write=False) as uow:
            row = self._visible(uow, case_id, actor)
            return CaseView.of(row, self.machine_of(uow, row), now=self.clock())

    def events(self, actor: Actor, case_id: int) -> list[EventRecord]:
        with self.store.unit(write=False) as uow:
            self._visible(uow, case_id, actor)
            return [record_of(e) for e in uow.events(case_id)]

    # -- changing -------------------------------------------------------------------
    def start(
        self,
        actor: Actor,
        *,
        code: str,
        unit: str,
        data: Any,
        applicant: str | None = None,
    ) -> CaseView:
        """A new case on the newest published version of ``code``.

        Raises:
            NotPublished: no published version of ``code``.
            InvalidData: ``data`` breaks the procedure's fields.
        """
        now = self.clock()
        with self.store.unit() as uow:
            proc = uow.newest_published(code)
            machine = self.compiled.get(proc)
            state, entries = machine.start(
                data=data, unit=unit, applicant=applicant or actor.id, actor=actor, now=now, calendar=self.calendar
            )
            row = CaseRow(
                procedure_id=proc.id,
                code=proc.code,
                procedure_version=proc.version,
                unit=unit,
                applicant=state.applicant,
                status=state.status,
                data=state.data,
                created_at=state.created_at,
                due_at=state.due_at,
                paused_since=None,
                guided=None,
                version=1,
                event_count=0,
                head_hash=GENESIS,
            )
            uow.session.add(row)
            uow.session.flush()
            defn = machine.definition
            row.steps = [
                CaseStepRow(
                    case_id=row.id,
                    position=i,
                    step_id=step.id,
                    role=step.role,
                    role_kind=machine.role_kind[i],
                    unit=unit,
                    applicant=state.applicant,
                    **_step_columns(s),
                )
                for i, (step, s) in enumerate(zip(defn.steps, state.steps, strict=True))
            ]
            self._append(uow, row, entries)
            uow.session.flush()
            return CaseView.of(row, machine, now=now)

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
    ) -> CaseView | StoredResponse:
        """Take ``outcome`` on ``step`` of the case.

        With ``idempotency``, the first request under its key is applied and
        its response stored in the same transaction; a repeat with the same
        request gets that :class:`StoredResponse` back instead.

        Raises:
            NotFound: no such case, or ``actor`` may not see it.
            IdempotencyMismatch, IdempotencyInFlight: see :meth:`_claim`.
            StaleCase: ``if_match`` is not the case's current version.
            InvalidAction, Forbidden, CaseClosed, StepNotActive, GuideOnce,
            InvalidData: as :meth:`CompiledProcedure.act`.
        """
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

        return self._change(actor, case_id, if_match, change, idempotency)

    def withdraw(
        self,
        actor: Actor,
        case_id: int,
        *,
        comment: str | None = None,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> CaseView | StoredResponse:
        """The applicant withdraws an open case.

        Raises:
            NotFound, StaleCase, Forbidden, CaseClosed.
        """

        def change(machine: CompiledProcedure, state: CaseState, now: dt.datetime) -> list[Entry]:
            return machine.withdraw(state, actor=actor, now=now, calendar=self.calendar, comment=comment)

        return self._change(actor, case_id, if_match, change, idempotency)

    def _change(
        self,
        actor: Actor,
        case_id: int,
        if_match: int | None,
        change: Callable[[CompiledProcedure, CaseState, dt.datetime], list[Entry]],
        idempotency: Idempotency | None = None,
    ) -> CaseView | StoredResponse:
        if idempotency is not None:
            stored = self._claim(actor, case_id, idempotency)
            if stored is not None:
                return stored
            try:
                return self._apply(actor, case_id, if_match, change, idempotency)
            except BaseException:
                self._release(actor, idempotency)
                raise
        return self._apply(actor, case_id, if_match, change, None)

    def _apply(
        self,
        actor: Actor,
        case_id: int,
        if_match: int | None,
        change: Callable[[CompiledProcedure, CaseState, dt.datetime], list[Entry]],
        idempotency: Idempotency | None,
    ) -> CaseView:
        # The hot path of the service: plain Core statements on the unit of
        # work's connection (two reads; one guarded case update, one
        # executemany of the changed steps, one of the events), since the
        # ORM's bookkeeping cost more than the database work itself.
        for attempt in range(RETRIES):
            try:
                return self._apply_once(actor, case_id, if_match, change, idempotency)
            except _Lost:
                if if_match is not None:
                    raise StaleCase(
                        f"case {case_id} changed while this action was applied", case_id=case_id, expected=if_match
                    ) from None
                if attempt == RETRIES - 1:
                    raise StaleCase(f"case {case_id} is changing too often; try again", case_id=case_id) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_once(
        self,
        actor: Actor,
        case_id: int,
        if_match: int | None,
        change: Callable[[CompiledProcedure, CaseState, dt.datetime], list[Entry]],
        idempotency: Idempotency | None,
    ) -> CaseView:
        with self.store.unit() as uow:
            conn = uow.connection
            head = conn.execute(_READ_CASE, {"b_case": case_id}).one_or_none()
            machine = self.compiled.by_id(head.procedure_id, uow) if head is not None else None
            if head is None or machine is None or not _sees(actor, head.applicant, head.unit, machine):
                raise NotFound(f"no case {case_id}", case_id=case_id)
            if if_match is not None and head.version != if_match:
                raise StaleCase(
                    f"case {case_id} is at version {head.version}, not {if_match}",
                    case_id=case_id,
                    expected=if_match,
                    actual=head.version,
                )
            step_rows = conn.execute(_READ_STEPS, {"b_case": case_id}).all()
            state = _state(head, step_rows)
            before = [tuple(r) for r in step_rows]
            now = self.clock()
            entries = change(machine, state, now)
            records = self._seal(case_id, head.head_hash, head.event_count, entries)
            moved = conn.execute(
                _UPDATE_CASE if state.data != head.data else _UPDATE_CASE_KEEP_DATA,
                {
                    "b_case": case_id,
                    "b_version": head.version,
                    "status": state.status,
                    "data": state.data,
                    "due_at": state.due_at,
                    "paused_since": state.paused_since,
                    "guided": state.guided.as_dict() if state.guided else None,
                    "version": head.version + 1,
                    "event_count": head.event_count + len(records),
                    "head_hash": records[-1].hash if records else head.head_hash,
                },
            )
            if moved.rowcount != 1:  # another transaction committed a change first
                raise _Lost
            changed = [
                {"b_case": case_id, "b_position": i, **_step_columns(s)}
                for i, (s, old) in enumerate(zip(state.steps, before, strict=True))
                if _step_tuple(s) != old
            ]
            if changed:
                conn.execute(_UPDATE_STEP, changed)
            if records:
                conn.execute(_INSERT_EVENT, [_event_columns(r) for r in records])
            view = CaseView.of_state(case_id, head.code, head.procedure_version, head.version + 1, state, machine, now=now)
            if idempotency is not None:
                status_code, response = idempotency.respond(view)
                conn.execute(
                    update(IdempotencyRow)
                    .where(IdempotencyRow.user_id == actor.id, IdempotencyRow.key == idempotency.key)
                    .values(status_code=status_code, response=response)
                )
            return view

    def _claim(self, actor: Actor, case_id: int, idempotency: Idempotency) -> StoredResponse | None:
        """Take the key for this request, or answer from what it holds.

        The claim commits at once, so that a concurrent request with the same
        key sees it in flight; the response is stored later, in the action's
        own transaction. A claim older than :attr:`idempotency_lease`
        seconds without a response belongs to a worker that died before its
        action committed (that action is not in the database), so it is
        taken over.

        Raises:
            NotFound: the case does not exist or ``actor`` may not see it
                (checked first: an answer stored under a key reveals nothing
                of a case the caller no longer sees).
            IdempotencyMismatch: the key was used for another request.
            IdempotencyInFlight: the first request with the key is still running.
        """
        now = self.clock()
        key = (actor.id, idempotency.key)
        for _ in range(2):
            with self.store.unit() as uow:
                head = uow.connection.execute(_READ_REACH, {"b_case": case_id}).one_or_none()
                if head is None or not _sees(actor, head.applicant, head.unit, self.compiled.by_id(head.procedure_id, uow)):
                    raise NotFound(f"no case {case_id}", case_id=case_id)
                insert_new = pg_insert if self.store.dialect == "postgresql" else sqlite_insert
                claimed = uow.connection.execute(
                    insert_new(IdempotencyRow)
                    .values(user_id=actor.id, key=idempotency.key, request_hash=idempotency.request_hash, created_at=now)
                    .on_conflict_do_nothing()
                    .returning(IdempotencyRow.key)
                )
                if claimed.first() is not None:
                    return None
                row = uow.session.get(IdempotencyRow, key)
                if row is None:
                    continue  # released meanwhile: try again
                if row.request_hash != idempotency.request_hash:
                    raise IdempotencyMismatch(
                        f"Idempotency-Key {idempotency.key!r} was used for another request; use a new key for a new request"
                    )
                if row.response is not None and row.status_code is not None:
                    return StoredResponse(row.status_code, row.response)
                if (now - row.created_at).total_seconds() < self.idempotency_lease:
                    raise IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")
                # Take it over only if it is still the abandoned claim just read:
                # of two retries racing for it, the second finds created_at moved
                # (or a response stored) once the first commits, and is in flight.
                taken = uow.session.execute(
                    update(IdempotencyRow)
                    .where(
                        IdempotencyRow.user_id == actor.id,
                        IdempotencyRow.key == idempotency.key,
                        IdempotencyRow.created_at <= now - dt.timedelta(seconds=self.idempotency_lease),
                        IdempotencyRow.status_code.is_(None),
                    )
                    .values(created_at=now)
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount != 1:  # type: ignore[attr-defined]
                    raise IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")
                return None
        raise IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")

    def _release(self, actor: Actor, idempotency: Idempotency) -> None:
        """A refused or failed request leaves its key free for a retry."""
        with self.store.unit() as uow:
            row = uow.session.get(IdempotencyRow, (actor.id, idempotency.key))
            if row is not None and row.response is None:
                uow.session.delete(row)

    def _seal(self, case_id: int, prev: str, seq: int, entries: list[Entry]) -> list[EventRecord]:
        """The audit events of one change, chained on from ``prev`` (event ``seq``)."""
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
                data=_jsonable(entry.details),
                decision=entry.decision,
                prev_hash=prev,
                signer=self.signer,
            )
            records.append(record)
            prev = record.hash
        return records

    def _append(self, uow: UnitOfWork, row: CaseRow, entries: list[Entry]) -> None:
        records = self._seal(row.id, row.head_hash, row.event_count, entries)
        uow.session.add_all(EventRow(**_event_columns(r)) for r in records)
        if records:
            row.head_hash, row.event_count = records[-1].hash, records[-1].seq

    # -- queries ----------------------------------------------------------------------
    def inbox(self, actor: Actor, *, limit: int = 50, cursor: str | None = None) -> tuple[list[InboxItem], str | None]:
        """The active steps ``actor`` may act on, earliest due first (no due
        time last), one page at a time.

        Each of the actor's roles is read through its own slice of the inbox
        index, already in due order, and the slices are merged: the query
        costs the page size per role, not the size of the backlog.

        Raises:
            ValueError: ``cursor`` is not one this method returned.
        """
        after = _uncursor(cursor) if cursor else None
        roles = sorted(actor.roles)
        params: dict[str, Any] = {f"role_{i}": role for i, role in enumerate(roles)}
        params.update(unit=actor.unit, me=actor.id, size=limit + 1)
        if after is not None:
            params.update(after_due=after[0], after_case=after[1], after_position=after[2])
        statement = _inbox_statement(len(roles), after is not None)
        now = self.clock()
        with self.store.unit(write=False) as uow:
            # One statement: the page, with each case's procedure; names come
            # from the compiled definitions, read once per process.
            picked = uow.connection.execute(statement, params).all()
            more = len(picked) > limit
            items = []
            for row in picked[:limit]:
                defn = self.compiled.by_id(row.procedure_id, uow).definition
                step = defn.steps[row.position]
                items.append(
                    InboxItem(
                        case_id=row.case_id,
                        code=row.code,
                        version=row.procedure_version,
                        name=defn.name,
                        step=step.id,
                        step_name=step.name,
                        activated_at=row.activated_at,
                        due_at=row.due_at,
                        overdue=row.due_at is not None and row.due_at < now,
                        cursor=_cursor(row.due_sort, row.case_id, row.position),
                    )
                )
        return items, (items[-1].cursor if more else None)

    def list_cases(
        self,
        actor: Actor,
        *,
        status: str | None = None,
        code: str | None = None,
        overdue: bool | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> tuple[list[CaseView], int | None]:
        """The cases ``actor`` sees, newest first, a page at a time; the
        cursor is the id to continue below.

        ``overdue`` keeps open cases past their due time or with an active
        step past its own (``False``: the others).
        """
        now = self.clock()
        with self.store.unit(write=False) as uow:
            q = select(CaseRow)
            if "admin" not in actor.permissions:
                mine = [p.id for p in uow.procedures() if self.compiled.get(p).office_roles & actor.roles]
                q = q.where(or_(CaseRow.applicant == actor.id, and_(CaseRow.unit == actor.unit, CaseRow.procedure_id.in_(mine))))
            if status is not None:
                q = q.where(CaseRow.status == status)
            if code is not None:
                q = q.where(CaseRow.code == code)
            if overdue is not None:
                late_step = (
                    select(CaseStepRow.case_id)
                    .where(CaseStepRow.case_id == CaseRow.id, CaseStepRow.status == "active", CaseStepRow.due_sort < now)
                    .exists()
                )
                late = and_(CaseRow.status == "open", or_(CaseRow.due_at < now, late_step))
                q = q.where(late if overdue else ~late)
            if cursor is not None:
                q = q.where(CaseRow.id < cursor)
            rows = list(uow.session.scalars(q.order_by(CaseRow.id.desc()).limit(limit + 1)))
            more = len(rows) > limit
            views = [CaseView.of(r, self.machine_of(uow, r), now=now) for r in rows[:limit]]
        return views, (views[-1].id if more and views else None)

    def may_start_for(self, actor: Actor, code: str, unit: str) -> bool:
        """Whether ``actor`` may open a case of ``code`` in ``unit`` for
        someone else: an official of the procedure in that unit (a one-stop
        desk taking a dossier)."""
        with self.store.unit(write=False) as uow:
            proc = uow.newest_published(code)
            return actor.unit == unit and bool(self.compiled.get(proc).office_roles & actor.roles)

    def overdue(self, *, limit: int = 1000) -> list[tuple[int, str, dt.datetime]]:
        """Active steps past their due time, most overdue first: ``(case, step, due_at)``."""
        now = self.clock()
        s = CaseStepRow
        with self.store.unit(write=False) as uow:
            rows = uow.session.execute(
                select(s.case_id, s.step_id, s.due_sort)
                .where(s.status == "active", s.due_sort < now)
                .order_by(s.due_sort, s.case_id, s.position)
                .limit(limit)
            ).all()
        return [(r.case_id, r.step_id, r.due_sort) for r in rows]

    # -- audit ------------------------------------------------------------------------
    def verify_audit(self, verifier: Verifier | None = None) -> Any:
        """Re-check every case's chain and signatures (see :func:`engine.audit.verify_all`)."""
        verifier = verifier or self.signer.verifier()
        with self.store.unit(write=False) as uow:
            heads = {
                r.id: (r.event_count, r.head_hash)
                for r in uow.session.execute(select(CaseRow.id, CaseRow.event_count, CaseRow.head_hash))
            }
            chains: dict[int, list[EventRecord]] = {case_id: [] for case_id in heads}
            for e in uow.session.scalars(select(EventRow).order_by(EventRow.case_id, EventRow.seq, EventRow.id)):
                chains.setdefault(e.case_id, []).append(record_of(e))
        return verify_all(((c, chains[c], heads.get(c, (0, GENESIS))) for c in sorted(chains)), verifier)


# -- rows and states ----------------------------------------------------------------
def _sees(actor: Actor, applicant: str, unit: str, machine: CompiledProcedure) -> bool:
    """service.md section 2: the applicant, a holder of one of the
    procedure's office roles in the case's unit, or an admin."""
    if "admin" in actor.permissions or applicant == actor.id:
        return True
    return actor.unit == unit and bool(machine.office_roles & actor.roles)


_STEP_STATE = ("status", "activated_at", "due_at", "completed_at", "outcome", "actor")
"""A step row's columns that make its :class:`StepState`, in its field order."""

# The action path's statements, built once. They name the tables, not the
# mapped classes, so that executing them skips the ORM's bulk machinery.
_CASES = cast(Table, CaseRow.__table__)
_STEPS = cast(Table, CaseStepRow.__table__)
_READ_CASE = select(_CASES).where(_CASES.c.id == bindparam("b_case"))
_READ_REACH = select(_CASES.c.applicant, _CASES.c.unit, _CASES.c.procedure_id).where(_CASES.c.id == bindparam("b_case"))
_READ_STEPS = (
    select(*(_STEPS.c[k] for k in _STEP_STATE)).where(_STEPS.c.case_id == bindparam("b_case")).order_by(_STEPS.c.position)
)
_CASE_COLUMNS = ("status", "due_at", "paused_since", "guided", "version", "event_count", "head_hash")
_UPDATE_CASE_KEEP_DATA = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_case"), _CASES.c.version == bindparam("b_version"))
    .values({k: bindparam(k) for k in _CASE_COLUMNS})
)
_UPDATE_CASE = _UPDATE_CASE_KEEP_DATA.values(data=bindparam("data"))
_UPDATE_STEP = (
    update(_STEPS)
    .where(_STEPS.c.case_id == bindparam("b_case"), _STEPS.c.position == bindparam("b_position"))
    .values({k: bindparam(k) for k in ("status", "activated_at", "due_at", "due_sort", "completed_at", "outcome", "actor")})
)
_INSERT_EVENT = insert(cast(Table, EventRow.__table__))


@functools.lru_cache(maxsize=64)
def _inbox_statement(roles: int, paged: bool) -> Any:
    """The inbox query for an actor with ``roles`` office roles, built once
    per shape: one slice of the inbox index per role, and the applicant's,
    each already in due order, merged and joined to their cases.

    Parameters: ``role_0``..., ``unit``, ``me``, ``size`` and, when
    ``paged``, ``after_due``, ``after_case``, ``after_position``.
    """
    s = _STEPS.c
    key = (s.due_sort, s.case_id, s.position)

    def arm(*conditions: Any) -> Any:
        q = select(s.case_id, s.position, s.due_sort, s.activated_at, s.due_at).where(s.status == "active", *conditions)
        if paged:
            q = q.where(
                tuple_(*key)
                > tuple_(bindparam("after_due", type_=UTCDateTime()), bindparam("after_case"), bindparam("after_position"))
            )
        # Wrapped, since SQLite takes no ORDER BY or LIMIT on the arms of a UNION.
        return select(q.order_by(*key).limit(bindparam("size")).subquery())

    arms = [arm(s.unit == bindparam("unit"), s.role == bindparam(f"role_{i}"), s.role_kind == "office") for i in range(roles)]
    arms.append(arm(s.applicant == bindparam("me"), s.role_kind == "applicant"))
    merged = union_all(*arms).subquery()
    return (
        select(merged, _CASES.c.code, _CASES.c.procedure_version, _CASES.c.procedure_id)
        .join(_CASES, _CASES.c.id == merged.c.case_id)
        .order_by(merged.c.due_sort, merged.c.case_id, merged.c.position)
        .limit(bindparam("size"))
    )


def _step_tuple(s: StepState) -> tuple[Any, ...]:
    return (s.status, s.activated_at, s.due_at, s.completed_at, s.outcome, s.actor)


def _guided(value: Mapping[str, Any] | None) -> GuidedReturn | None:
    return GuidedReturn(**{**value, "missing": tuple(value.get("missing", ()))}) if value else None


def _state(head: Any, step_rows: Iterable[Any]) -> CaseState:
    """A case's plain state from a ``cases`` row and its steps' state columns."""
    return CaseState(
        id=head.id,
        status=head.status,
        unit=head.unit,
        applicant=head.applicant,
        data=dict(head.data),
        created_at=head.created_at,
        due_at=head.due_at,
        paused_since=head.paused_since,
        guided=_guided(head.guided),
        steps=[StepState(*r) for r in step_rows],
    )


def _step_columns(s: StepState) -> dict[str, Any]:
    return {
        "status": s.status,
        "activated_at": s.activated_at,
        "due_at": s.due_at,
        "due_sort": s.due_at or NO_DUE,
        "completed_at": s.completed_at,
        "outcome": s.outcome,
        "actor": s.actor,
    }


def state_of(row: CaseRow) -> CaseState:
    """The case's plain state, as the machine takes it."""
    ordered = sorted(row.steps, key=lambda s: s.position)
    return _state(row, ([getattr(s, k) for k in _STEP_STATE] for s in ordered))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _event_columns(record: EventRecord) -> dict[str, Any]:
    return {
        "case_id": record.case_id,
        "seq": record.seq,
        "at": record.at,
        "actor": record.actor,
        "type": record.type,
        "step": record.step,
        "outcome": record.outcome,
        "comment": record.comment,
        "data": record.data,
        "decision": record.decision,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        "signature": record.signature,
    }


def record_of(row: EventRow) -> EventRecord:
    return EventRecord(
        case_id=row.case_id,
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        type=row.type,
        step=row.step,
        outcome=row.outcome,
        comment=row.comment,
        data=dict(row.data),
        decision=bool(row.decision),
        prev_hash=row.prev_hash,
        hash=row.hash,
        signature=row.signature,
    )


# -- what callers see -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepView:
    id: str
    name: str
    role: str
    status: str
    activated_at: dt.datetime | None
    due_at: dt.datetime | None
    completed_at: dt.datetime | None
    outcome: str | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as service.md section 3 shows it."""

    id: int
    code: str
    procedure_version: int
    unit: str
    applicant: str
    status: str
    created_at: dt.datetime
    due_at: dt.datetime | None
    data: Mapping[str, Any]
    version: int
    steps: tuple[StepView, ...]
    paused: bool
    guided: GuidedReturn | None

    @classmethod
    def of(cls, row: CaseRow, machine: CompiledProcedure, *, now: dt.datetime) -> CaseView:
        return cls.of_state(row.id, row.code, row.procedure_version, row.version, state_of(row), machine, now=now)

    @classmethod
    def of_state(
        cls,
        case_id: int,
        code: str,
        procedure_version: int,
        version: int,
        state: CaseState,
        machine: CompiledProcedure,
        *,
        now: dt.datetime,
    ) -> CaseView:
        steps = machine.definition.steps
        return cls(
            id=case_id,
            code=code,
            procedure_version=procedure_version,
            unit=state.unit,
            applicant=state.applicant,
            status=state.status,
            created_at=state.created_at,
            due_at=state.due_at,
            data=dict(state.data),
            version=version,
            paused=state.paused_since is not None,
            guided=state.guided,
            steps=tuple(
                StepView(
                    id=step.id,
                    name=step.name,
                    role=step.role,
                    status=s.status,
                    activated_at=s.activated_at,
                    due_at=s.due_at,
                    completed_at=s.completed_at,
                    outcome=s.outcome,
                    overdue=s.status == "active" and s.due_at is not None and s.due_at < now,
                )
                for step, s in zip(steps, state.steps, strict=True)
            ),
        )

    @property
    def open(self) -> bool:
        return self.status == OPEN


def publish_definition(store: Store, body: str, *, now: dt.datetime | None = None, source: str = "<definition>") -> ProcedureRow:
    """Load, store and publish a definition's YAML text; an identical body
    under an existing code and version is accepted as already published.

    Raises:
        DefinitionError: the text is not a valid definition.
        Conflict: another body is stored under this code and version.
    """
    defn = load_text(body, source=source)
    now = now or utcnow()
    with store.unit() as uow:
        existing = uow.find_procedure(defn.code, defn.version)
        if existing is not None:
            if existing.content_hash != content_hash(body):
                raise Conflict(
                    f"{source}: {defn.code} version {defn.version} is stored already with another body; give the new one a new version"
                )
            return uow.publish(defn.code, defn.version, now=now)
        return uow.add_procedure(defn, body, now=now, status=PUBLISHED)


__all__ = ["CaseClosed", "CaseService", "CaseView", "Compiled", "InboxItem", "publish_definition"]
