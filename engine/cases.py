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
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, tuple_, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from procedures import load_text

from .audit import GENESIS, EventRecord, Signer, Verifier, format_at, seal, verify_all
from .calendar import WorkingCalendar
from .db import NO_DUE, CaseRow, CaseStepRow, EventRow, IdempotencyRow, ProcedureRow
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
        return dt.datetime.fromisoformat(due), int(case_id), int(position)
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
        return self.compiled.get(uow.procedure_by_id(row.procedure_id))

    def can_see(self, uow: UnitOfWork, row: CaseRow, actor: Actor) -> bool:
        """service.md section 2: the applicant, a holder of one of the
        procedure's office roles in the case's unit, or an admin."""
        if "admin" in actor.permissions or row.applicant == actor.id:
            return True
        if actor.unit != row.unit:
            return False
        return bool(self.machine_of(uow, row).office_roles & actor.roles)

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
            self._append(uow, row, machine, entries)
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
            with self.store.unit(write=False) as uow:
                self._visible(uow, case_id, actor)  # 404 comes before any replay
            stored = self._claim(actor, idempotency)
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
        for attempt in range(RETRIES):
            try:
                with self.store.unit() as uow:
                    row = self._visible(uow, case_id, actor)
                    if if_match is not None and row.version != if_match:
                        raise StaleCase(
                            f"case {case_id} is at version {row.version}, not {if_match}",
                            case_id=case_id,
                            expected=if_match,
                            actual=row.version,
                        )
                    machine = self.machine_of(uow, row)
                    state = state_of(row)
                    now = self.clock()
                    entries = change(machine, state, now)
                    _write_back(row, state)
                    row.version += 1
                    self._append(uow, row, machine, entries)
                    uow.session.flush()
                    view = CaseView.of(row, machine, now=now)
                    if idempotency is not None:
                        claim = uow.session.get(IdempotencyRow, (actor.id, idempotency.key))
                        assert claim is not None  # taken by _claim, released only by this caller
                        claim.status_code, claim.response = idempotency.respond(view)
                    return view
            except StaleDataError:
                if if_match is not None:
                    raise StaleCase(
                        f"case {case_id} changed while this action was applied", case_id=case_id, expected=if_match
                    ) from None
                if attempt == RETRIES - 1:
                    raise StaleCase(f"case {case_id} is changing too often; try again", case_id=case_id) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _claim(self, actor: Actor, idempotency: Idempotency) -> StoredResponse | None:
        """Take the key for this request, or answer from what it holds.

        The claim commits at once, so that a concurrent request with the same
        key sees it in flight; the response is stored later, in the action's
        own transaction. A claim older than :attr:`idempotency_lease`
        seconds without a response belongs to a worker that died before its
        action committed (that action is not in the database), so it is
        taken over.

        Raises:
            IdempotencyMismatch: the key was used for another request.
            IdempotencyInFlight: the first request with the key is still running.
        """
        now = self.clock()
        key = (actor.id, idempotency.key)
        for _ in range(2):
            with self.store.unit() as uow:
                row = uow.session.get(IdempotencyRow, key)
                if row is None:
                    try:
                        with uow.session.begin_nested():
                            uow.session.add(
                                IdempotencyRow(
                                    user_id=actor.id, key=idempotency.key, request_hash=idempotency.request_hash, created_at=now
                                )
                            )
                    except IntegrityError:
                        continue  # another request took it meanwhile: look again
                    return None
                if row.request_hash != idempotency.request_hash:
                    raise IdempotencyMismatch(
                        f"Idempotency-Key {idempotency.key!r} was used for another request; use a new key for a new request"
                    )
                if row.response is not None and row.status_code is not None:
                    return StoredResponse(row.status_code, row.response)
                if (now - row.created_at).total_seconds() < self.idempotency_lease:
                    raise IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")
                row.created_at = now
                return None
        raise IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")

    def _release(self, actor: Actor, idempotency: Idempotency) -> None:
        """A refused or failed request leaves its key free for a retry."""
        with self.store.unit() as uow:
            row = uow.session.get(IdempotencyRow, (actor.id, idempotency.key))
            if row is not None and row.response is None:
                uow.session.delete(row)

    def _append(self, uow: UnitOfWork, row: CaseRow, machine: CompiledProcedure, entries: list[Entry]) -> None:
        prev, seq = row.head_hash, row.event_count
        for entry in entries:
            seq += 1
            record = seal(
                case_id=row.id,
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
            uow.session.add(EventRow(**_event_columns(record)))
            prev = record.hash
        row.head_hash, row.event_count = prev, seq

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
        s = CaseStepRow
        key = (s.due_sort, s.case_id, s.position)

        def page(*conditions: Any) -> Any:
            q = select(s.case_id, s.position, s.due_sort).where(s.status == "active", *conditions)
            if after is not None:
                q = q.where(tuple_(*key) > tuple_(*after))
            # Wrapped, since SQLite takes no ORDER BY or LIMIT on the arms of a UNION.
            return select(q.order_by(*key).limit(limit + 1).subquery())

        parts = [page(s.unit == actor.unit, s.role == role, s.role_kind == "office") for role in sorted(actor.roles)]
        parts.append(page(s.applicant == actor.id, s.role_kind == "applicant"))
        merged = union_all(*parts).subquery()
        now = self.clock()
        with self.store.unit(write=False) as uow:
            picked = uow.session.execute(
                select(merged.c.case_id, merged.c.position, merged.c.due_sort)
                .order_by(merged.c.due_sort, merged.c.case_id, merged.c.position)
                .limit(limit + 1)
            ).all()
            more = len(picked) > limit
            picked = picked[:limit]
            if not picked:
                return [], None
            pairs = [(p.case_id, p.position) for p in picked]
            rows = uow.session.execute(
                select(s, CaseRow.code, CaseRow.procedure_version, ProcedureRow.name)
                .join(CaseRow, CaseRow.id == s.case_id)
                .join(ProcedureRow, ProcedureRow.id == CaseRow.procedure_id)
                .where(or_(*(and_(s.case_id == c, s.position == p) for c, p in pairs)))
            ).all()
            found = {(r[0].case_id, r[0].position): r for r in rows}
            items = []
            for c, p in pairs:
                step_row, code, version, name = found[(c, p)]
                proc = uow.procedure(code, version)
                step = self.compiled.get(proc).definition.steps[p]
                items.append(
                    InboxItem(
                        case_id=c,
                        code=code,
                        version=version,
                        name=name,
                        step=step.id,
                        step_name=step.name,
                        activated_at=step_row.activated_at,
                        due_at=step_row.due_at,
                        overdue=step_row.due_at is not None and step_row.due_at < now,
                        cursor=_cursor(step_row.due_sort, c, p),
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
    guided = row.guided
    return CaseState(
        id=row.id,
        status=row.status,
        unit=row.unit,
        applicant=row.applicant,
        data=dict(row.data),
        created_at=row.created_at,
        due_at=row.due_at,
        paused_since=row.paused_since,
        guided=GuidedReturn(**{**guided, "missing": tuple(guided.get("missing", ()))}) if guided else None,
        steps=[
            StepState(s.status, s.activated_at, s.due_at, s.completed_at, s.outcome, s.actor)
            for s in sorted(row.steps, key=lambda s: s.position)
        ],
    )


def _write_back(row: CaseRow, state: CaseState) -> None:
    row.status = state.status
    if row.data != state.data:
        row.data = state.data
    row.due_at, row.paused_since = state.due_at, state.paused_since
    row.guided = state.guided.as_dict() if state.guided else None
    for step_row, s in zip(sorted(row.steps, key=lambda r: r.position), state.steps, strict=True):
        for column, value in _step_columns(s).items():
            if getattr(step_row, column) != value:
                setattr(step_row, column, value)


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
        steps = machine.definition.steps
        return cls(
            id=row.id,
            code=row.code,
            procedure_version=row.procedure_version,
            unit=row.unit,
            applicant=row.applicant,
            status=row.status,
            created_at=row.created_at,
            due_at=row.due_at,
            data=dict(row.data),
            version=row.version,
            paused=row.paused_since is not None,
            guided=state_of(row).guided,
            steps=tuple(
                StepView(
                    id=steps[s.position].id,
                    name=steps[s.position].name,
                    role=s.role,
                    status=s.status,
                    activated_at=s.activated_at,
                    due_at=s.due_at,
                    completed_at=s.completed_at,
                    outcome=s.outcome,
                    overdue=s.status == "active" and s.due_at is not None and s.due_at < now,
                )
                for s in sorted(row.steps, key=lambda r: r.position)
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
