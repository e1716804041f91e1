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

import asyncio
import contextvars
import datetime as dt
import functools
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, or_, select

from procedures import load_text

from .audit import GENESIS, EventRecord, format_at, seal
from .calendar import WorkingCalendar
from .db import CaseRow, CaseStepRow, duplicate_key
from .direct import Ask, Direct, Statement, run_steps, run_steps_async
from .errors import (
    Abolished,
    CaseClosed,
    CorruptRecord,
    EngineError,
    FieldProblem,
    IdempotencyInFlight,
    IdempotencyMismatch,
    InvalidData,
    NotFound,
    NotPublished,
    StaleCase,
)
from .journal import content_hash
from .keys import Keyring, Signer, Verifier
from .machine import Actor, CaseState, CompiledProcedure, Entry
from .rows import (
    ANSWER_KEY,
    CLAIM_KEY,
    CLOSE_CHAIN,
    INSERT_CASE,
    INSERT_EVENT,
    INSERT_STEP,
    NEWEST_PUBLISHED,
    READ_CASE,
    READ_CASE_STEPS,
    READ_CASE_STEPS_CLAIM,
    READ_EVENTS,
    READ_KEY,
    READ_PROCEDURE,
    READ_REACH,
    READ_SIGNED_IN_CASE,
    READ_STEPS,
    TAKE_OVER_KEY,
    USER_EXISTS,
    KeyWrite,
    case_changes,
    changed_steps,
    code_params,
    event_columns,
    event_rows,
    inbox_statement,
    key_lock,
    make_cursor,
    read_cursor,
    record_of,
    sees,
    state_from,
    step_changes,
    step_columns,
    steps_read,
    update_case,
    update_step,
    write_change,
)
from .store import AsyncStatements, Store, UnitOfWork
from .users import User, token_lookup
from .verify import AuditReport, verify_database
from .views import CaseView, InboxItem, StoredResponse

RETRIES = 8
"""How often an action without ``If-Match`` is re-applied after losing a race."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


T = TypeVar("T")


async def _aside(executor: Executor | None, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` in a thread of ``executor`` (None: the
    loop's default), with the caller's context variables, as
    :func:`asyncio.to_thread` runs it in the default one."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


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


class StoredProcedure(Protocol):
    """What compiling a stored version needs of its row."""

    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def body(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


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

    def on(self, procedure_id: int, db: Direct) -> CompiledProcedure:
        """As :meth:`by_id`, inside a direct transaction.

        Raises:
            NotFound: no procedure has this id.
        """
        found = self._by_id.get(procedure_id)
        return found if found is not None else run_steps(self.asking(procedure_id), db)

    def ready(self, procedure_id: int) -> CompiledProcedure | None:
        """The compiled version with this id, if it is compiled already."""
        return self._by_id.get(procedure_id)

    def asking(self, procedure_id: int) -> Generator[Ask, Any, CompiledProcedure]:
        """:meth:`on` as statements asked one at a time (see
        :func:`~engine.direct.run_steps`): none once it is compiled.

        Raises:
            NotFound: no procedure has this id.
        """
        found = self._by_id.get(procedure_id)
        if found is not None:
            return found
        row = yield READ_PROCEDURE, {"b_id": procedure_id}
        if row is None:
            raise NotFound(f"no procedure with id {procedure_id}")
        return self.get(row)

    def get(self, row: StoredProcedure) -> CompiledProcedure:
        found = self._by_id.get(row.id)
        if found is not None:
            return found
        with self._lock:
            found = self._by_id.get(row.id)
            if found is None:
                if content_hash(row.body) != row.content_hash:
                    raise CorruptRecord(
                        f"procedure {row.code} version {row.version}: the stored body does not match its content hash"
                    )
                found = CompiledProcedure(load_text(row.body, source=f"{row.code}.v{row.version}"))
                self._by_id[row.id] = found
            return found


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


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's ``Idempotency-Key``, a digest of the request, and how to
    render the response that a repeat of the request will get back."""

    key: str
    request_hash: str
    respond: Callable[[CaseView], tuple[int, str]]
    """The status and the body (a JSON document) of the response to a request that changed the case into this view"""


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
        if store.signer is None:
            store.signer = signer  # the journal's changes are signed with the key the events are
        self.calendar = calendar or WorkingCalendar()
        self.clock = clock
        self.compiled = compiled or Compiled()
        self._folded = store.dialect == "postgresql"
        """PostgreSQL reads a case with its steps, and writes a change, in one statement each (see engine.rows)"""
        self._case_read = READ_CASE_STEPS if self._folded else READ_CASE

    # -- reading ------------------------------------------------------------------
    def machine_of(self, uow: UnitOfWork, row: CaseRow) -> CompiledProcedure:
        return self.compiled.by_id(row.procedure_id, uow)

    def _head(
        self, db: Direct, case_id: int, actor: Actor, read: Statement = READ_CASE, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, CompiledProcedure]:
        """The case's row (as ``read`` selects it: :data:`READ_CASE`,
        :data:`READ_REACH` for visibility alone, or on PostgreSQL
        :data:`READ_CASE_STEPS` with its steps) and its version's machine;
        ``params`` are the read's other parameters.

        Raises:
            NotFound: no such case, or ``actor`` may not see it.
        """
        head = db.one(read, {**(params or {}), "b_case": case_id})
        machine = self.compiled.on(head.procedure_id, db) if head is not None else None
        if head is None or machine is None or not sees(actor, head.applicant, head.unit, machine):
            raise NotFound(f"no case {case_id}", case_id=case_id)
        return head, machine

    def _steps(self, db: Direct | None, head: Any) -> list[Any]:
        """The step rows (of :data:`READ_STEPS`) of a case read by
        ``self._case_read``: on PostgreSQL read with it, on SQLite read in ``db``."""
        if self._folded:
            return steps_read(head)
        assert db is not None, "SQLite reads the steps on their own"
        return db.all(READ_STEPS, {"b_case": head.id})

    def _head_claiming(
        self, db: Direct, case_id: int, actor: Actor, idempotency: Idempotency | None
    ) -> tuple[Any, CompiledProcedure, StoredResponse | None]:
        """PostgreSQL: as :meth:`_head` with :data:`READ_CASE_STEPS`, and the
        key claimed in the same statement; with the stored response when
        the key was used before (see :meth:`_take_key`)."""
        if idempotency is None:
            return (*self._head(db, case_id, actor, READ_CASE_STEPS), None)
        now = self.clock()
        claim = self._claim(actor, idempotency, now)
        head, machine = self._head(db, case_id, actor, READ_CASE_STEPS_CLAIM, claim)
        stored = None if head.claimed else self._not_claimed(db, actor, idempotency, now)
        return head, machine, stored

    @staticmethod
    def _newest_published(db: Direct, code: str) -> int:
        """The id of the version new cases of ``code`` start on.

        Raises:
            NotPublished: ``code`` has no published version.
        """
        proc_id = db.scalar(NEWEST_PUBLISHED, code_params(code))
        if proc_id is None:
            raise NotPublished(f"procedure {code!r} has no published version")
        return int(proc_id)

    def get(self, actor: Actor, case_id: int, db: Direct | None = None) -> CaseView:
        """Raises NotFound when the case does not exist or ``actor`` may not see it.

        Officials open cases all day: prebuilt reads, as an action makes
        (one on PostgreSQL, two on SQLite), in ``db`` when given (see
        :meth:`~engine.store.Store.reading`)."""
        if db is None:
            with self.store.reading() as own:
                return self.get(actor, case_id, own)
        head, machine = self._head(db, case_id, actor, self._case_read)
        state = state_from(head, self._steps(db, head))
        return CaseView.of_state(case_id, head.code, head.procedure_version, head.version, state, machine, now=self.clock())

    def events(self, actor: Actor, case_id: int) -> list[EventRecord]:
        """Raises NotFound when the case does not exist or ``actor`` may not see it."""
        with self.store.direct(write=False) as db:
            self._head(db, case_id, actor, READ_REACH)
            return [record_of(e) for e in db.all(READ_EVENTS, {"b_case": case_id})]

    # -- changing -------------------------------------------------------------------
    def start(
        self,
        actor: Actor,
        *,
        code: str,
        unit: str,
        data: Any,
        applicant: str | None = None,
        db: Direct | None = None,
    ) -> CaseView:
        """A new case on the newest published version of ``code``, in
        ``db`` (a writing :meth:`Store.direct`, which its caller commits)
        when given, else in a transaction of its own.

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
        if db is None:
            with self.store.direct() as own:
                return self.start(actor, code=code, unit=unit, data=data, applicant=applicant, db=own)
        now = self.clock()
        if applicant is not None and applicant != actor.id and db.scalar(USER_EXISTS, {"b_user": applicant}) is None:
            raise InvalidData([FieldProblem("applicant", f"người nộp “{applicant}” không phải là người dùng nào của hệ thống")])
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
        db: Direct | None = None,
    ) -> CaseView | StoredResponse:
        """Take ``outcome`` on ``step`` of the case, in one transaction: in
        ``db`` (a writing :meth:`Store.direct`, which its caller commits)
        when given, else in one of its own.

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
        return self._change(actor, case_id, if_match, change, idempotency, db)

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
        db: Direct | None = None,
    ) -> CaseView | StoredResponse:
        """The applicant withdraws an open case (in ``db`` as :meth:`act`).

        Raises:
            NotFound, StaleCase, Forbidden, CaseClosed.
        """
        return self._change(actor, case_id, if_match, self.withdrawing(actor, comment=comment), idempotency, db)

    def withdrawing(self, actor: Actor, *, comment: str | None = None) -> Change:
        """What :meth:`withdraw` does to the case's state (for :meth:`prepare`)."""

        def change(machine: CompiledProcedure, state: CaseState, now: dt.datetime) -> list[Entry]:
            return machine.withdraw(state, actor=actor, now=now, calendar=self.calendar, comment=comment)

        return change

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
            head, machine = self._head(db, ahead.case_id, ahead.actor, self._case_read)
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
            return self._change(ahead.actor, ahead.case_id, ahead.if_match, ahead.change, ahead.idempotency, db)
        if ahead.idempotency is not None:
            stored = self._take_key(db, ahead.actor, ahead.idempotency, self.clock())
            if stored is not None:
                return stored
        if self._write(db, ahead.plan):
            return ahead.plan.view
        head, machine = self._head(db, ahead.case_id, ahead.actor, self._case_read)
        return self._applying(db, ahead.actor, head, machine, ahead.if_match, ahead.change, ahead.idempotency)

    def change_signed_in(
        self,
        token: str,
        case_id: int,
        change: Callable[[Actor], Change],
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[User, CaseView | StoredResponse] | None:
        """PostgreSQL: the change ``change(actor)`` (:meth:`acting` or
        :meth:`withdrawing`) by the bearer of ``token``, with the token
        checked first as service.md section 3 orders it. None: the token is
        unknown or revoked.

        The service's busiest request, in two statements, each its own
        transaction: one reads the token's user, the case with its steps and
        the key's earlier use (:data:`READ_SIGNED_IN_CASE`), and one writes
        the change with the answer and the key, guarded by the version read
        (:func:`write_change` with ``insert``). A transaction takes four
        round trips for the same, with its ``BEGIN`` and ``COMMIT``. Whatever
        is not plain, a key used before, a case that moved on, a key claimed
        or stored meanwhile, is done again by :meth:`act` 's transaction,
        which claims the key first and so answers it as always.

        Raises:
            as :meth:`act`.
        """
        lookup = token_lookup(token)
        if lookup is None:
            return None
        with self.store.statements() as db:
            done = run_steps(self._signed_in(lookup, case_id, change, if_match, idempotency), db)
        if done is None:
            return None
        user, result, doing = done
        if result is None:
            result = self._change(user.actor, case_id, if_match, doing, idempotency, None)
        return user, result

    async def change_signed_in_async(
        self,
        statements: AsyncStatements,
        token: str,
        case_id: int,
        change: Callable[[Actor], Change],
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        executor: Executor | None = None,
    ) -> tuple[User, CaseView | StoredResponse] | None:
        """:meth:`change_signed_in` on the event loop, its two statements
        awaited on ``statements``' connections; what is done again in a
        transaction goes to a thread of ``executor`` (the caller's pool of
        transaction threads; else the loop's default one).

        A worker's actions then need no thread each: with four threads
        taking turns at the GIL between round trips, handing it over had
        cost a worker more than the actions' own work.

        Called on another loop than the one ``statements`` was opened on (an
        ASGI host may run the lifespan on one loop and requests on another),
        it runs :meth:`change_signed_in` in a thread instead.
        """
        if not statements.on_this_loop():
            return await _aside(
                executor, self.change_signed_in, token, case_id, change, if_match=if_match, idempotency=idempotency
            )
        lookup = token_lookup(token)
        if lookup is None:
            return None
        async with statements.statements() as db:
            steps = self._signed_in(lookup, case_id, change, if_match, idempotency, compile_here=False)
            done = await run_steps_async(steps, db)
        if done is None:
            return None
        user, result, doing = done
        if result is None:
            result = await _aside(executor, self._change, user.actor, case_id, if_match, doing, idempotency, None)
        return user, result

    def _signed_in(
        self,
        lookup: str,
        case_id: int,
        change: Callable[[Actor], Change],
        if_match: int | None,
        idempotency: Idempotency | None,
        *,
        compile_here: bool = True,
    ) -> Generator[Ask, Any, tuple[User, CaseView | StoredResponse | None, Change] | None]:
        """The statements of :meth:`change_signed_in`, asked one at a time
        (see :func:`~engine.direct.run_steps`); the user, then the result,
        or None for a change to make again in a transaction.

        Not ``compile_here`` (on the event loop), a case of a procedure
        version not compiled yet in this process is such a change too: the
        transaction, in a thread, compiles it (tens of milliseconds, once),
        which on the loop would hold up every request of the worker."""
        key = idempotency.key if idempotency is not None else None
        head = yield READ_SIGNED_IN_CASE, {"h": lookup, "b_case": case_id, "b_key": key}
        if head is None:
            return None
        user = User(head.u_id, head.u_name, head.u_unit, tuple(head.u_roles), tuple(head.u_permissions))
        actor = user.actor
        if head.id is None:
            raise NotFound(f"no case {case_id}", case_id=case_id)
        machine = self.compiled.ready(head.procedure_id)
        if machine is None:
            if not compile_here:
                return user, None, change(actor)
            machine = yield from self.compiled.asking(head.procedure_id)
        if not sees(actor, head.applicant, head.unit, machine):
            raise NotFound(f"no case {case_id}", case_id=case_id)
        doing = change(actor)
        if idempotency is not None and head.k_request_hash is not None:
            if head.k_request_hash == idempotency.request_hash and head.k_response is not None:
                return user, StoredResponse(head.k_status_code, head.k_response), doing
            return user, None, doing
        plan = self._plan(None, actor, head, machine, if_match, doing, idempotency, claimed=False)
        (write, values), *_ = plan.writes
        try:
            moved = yield write, values
        except Exception as exc:
            if not duplicate_key(exc):  # not the key, stored meanwhile
                raise
            return user, None, doing
        return user, (plan.view if moved is not None and moved[0] == 1 else None), doing

    def _change(
        self,
        actor: Actor,
        case_id: int,
        if_match: int | None,
        change: Change,
        idempotency: Idempotency | None,
        db: Direct | None,
    ) -> CaseView | StoredResponse:
        """One transaction: the case's visibility, the idempotency key, then
        the change. A refusal rolls all of it back, the key's claim with it,
        so a retry with the key is applied afresh."""
        if db is None:
            with self.store.direct() as own:
                return self._change(actor, case_id, if_match, change, idempotency, own)
        if self._folded:
            head, machine, stored = self._head_claiming(db, case_id, actor, idempotency)
        else:
            head, machine = self._head(db, case_id, actor)
            stored = self._take_key(db, actor, idempotency, self.clock()) if idempotency is not None else None
        if stored is not None:
            return stored
        return self._applying(db, actor, head, machine, if_match, change, idempotency)

    def _applying(
        self,
        db: Direct,
        actor: Actor,
        head: Any,
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
                raise StaleCase(f"case {case_id} changed while this action was applied", case_id=case_id, expected=if_match)
            if attempt == RETRIES - 1:
                raise StaleCase(f"case {case_id} is changing too often; try again", case_id=case_id)
            head, machine = self._head(db, case_id, actor, self._case_read)
        raise AssertionError("unreachable")  # pragma: no cover

    def _plan(
        self,
        db: Direct | None,
        actor: Actor,
        head: Any,
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
                f"case {case_id} is at version {head.version}, not {if_match}",
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
        if self._folded:
            key_write: KeyWrite = None
            if answer is not None and idempotency is not None:
                key_write = "fill" if claimed else "insert"
                if not claimed:
                    answer.update(request_hash=idempotency.request_hash, created_at=now, lock=key_lock(actor.id, idempotency.key))
            write = write_change(tuple(changed), key_write)
            everything = {**guarded, **changed_steps(step_rows, state.steps), **event_rows(records), **(answer or {})}
            return _Plan(view, [(write, everything)])
        writes: list[tuple[Statement, Any]] = [(update_case(tuple(changed)), guarded)]
        writes += [(update_step(columns), rows) for columns, rows in step_changes(case_id, step_rows, state.steps).items()]
        writes.append((INSERT_EVENT, [event_columns(r) for r in records]))
        if answer is not None:
            writes.append((ANSWER_KEY[self.store.dialect], answer))
        return _Plan(view, writes)

    def _write(self, db: Direct, plan: _Plan) -> bool:
        """The writes of ``plan``, unless the case moved on from the version
        it was worked out on (False: then nothing is written)."""
        (guard, guarded), *rest = plan.writes
        if self._folded:  # one statement, each part conditioned on the guarded update
            return bool(db.scalar(guard, guarded) == 1)
        if db.run(guard, guarded) != 1:
            return False
        for statement, values in rest:
            if isinstance(values, list):  # a row each
                db.many(statement, values)
            else:
                db.run(statement, values)
        return True

    def _take_key(self, db: Direct, actor: Actor, idempotency: Idempotency, now: dt.datetime) -> StoredResponse | None:
        """Claim the key for this request in ``db``'s transaction (None), or
        the stored response of the first request with it.

        The claim is the key's row, inserted without a response, which the
        change fills in before the transaction commits; a refusal rolls the
        row back. A request with the key in flight meanwhile is told so:
        on PostgreSQL the claimer holds a transaction-scoped advisory lock
        on the key, which a repeat fails to take (it would otherwise wait on
        the uncommitted row); on SQLite a repeat waits at the writer gate
        until the first has committed or rolled back, and then replays it
        or is applied afresh.

        A committed claim without a response (left by an earlier tinhgon,
        which committed the claim before the action) older than
        :attr:`idempotency_lease` seconds belonged to a worker that died
        before its action committed, so it is taken over.

        Raises:
            IdempotencyMismatch: the key was used for another request.
            IdempotencyInFlight: the first request with the key is still running.
        """
        if db.one(CLAIM_KEY[self.store.dialect], self._claim(actor, idempotency, now)) is not None:
            return None
        return self._not_claimed(db, actor, idempotency, now)

    def _claim(self, actor: Actor, idempotency: Idempotency, now: dt.datetime) -> dict[str, Any]:
        """The parameters of :data:`CLAIM_KEY` (and :data:`READ_CASE_STEPS_CLAIM`)."""
        claim = {"b_user": actor.id, "b_key": idempotency.key, "request_hash": idempotency.request_hash, "created_at": now}
        if self.store.dialect == "postgresql":  # the claim takes the key's advisory lock first
            claim["lock"] = key_lock(actor.id, idempotency.key)
        return claim

    def _not_claimed(self, db: Direct, actor: Actor, idempotency: Idempotency, now: dt.datetime) -> StoredResponse | None:
        """What a request gets whose claim of the key found it taken (see :meth:`_take_key`)."""
        key = {"b_user": actor.id, "b_key": idempotency.key}
        in_flight = IdempotencyInFlight(f"the request with Idempotency-Key {idempotency.key!r} is still being processed")
        row = db.one(READ_KEY, key)
        if row is None:  # another transaction holds the key (PostgreSQL's lock), or has just let it go
            raise in_flight
        if row.request_hash != idempotency.request_hash:
            raise IdempotencyMismatch(
                f"Idempotency-Key {idempotency.key!r} was used for another request; use a new key for a new request"
            )
        if row.response is not None and row.status_code is not None:
            return StoredResponse(row.status_code, row.response)
        if (now - row.created_at).total_seconds() < self.idempotency_lease:
            raise in_flight
        abandoned = now - dt.timedelta(seconds=self.idempotency_lease)
        if db.run(TAKE_OVER_KEY, {**key, "b_abandoned": abandoned, "created_at": now}) != 1:
            raise in_flight
        return None

    # -- queries ----------------------------------------------------------------------
    def inbox(
        self, actor: Actor, *, limit: int = 50, cursor: str | None = None, db: Direct | None = None
    ) -> tuple[list[InboxItem], str | None]:
        """The active steps ``actor`` may act on, earliest due first (no due
        time last), one page at a time.

        Each of the actor's roles is read through its own slice of the inbox
        index, already in due order, and the slices are merged: the query
        costs the page size per role, not the size of the backlog.

        One statement, in ``db`` when given (see
        :meth:`~engine.store.Store.reading`).

        Raises:
            ValueError: ``cursor`` is not one this method returned.
        """
        if db is None:
            with self.store.reading() as own:
                return self.inbox(actor, limit=limit, cursor=cursor, db=own)
        after = read_cursor(cursor) if cursor else None
        roles = sorted(actor.roles)
        params: dict[str, Any] = {f"role_{i}": role for i, role in enumerate(roles)}
        params.update(unit=actor.unit, me=actor.id, size=limit + 1)
        if after is not None:
            params.update(after_due=after[0], after_case=after[1], after_position=after[2])
        statement = inbox_statement(len(roles), after is not None)
        now = self.clock()
        # One prebuilt statement: the page, with each case's procedure;
        # names come from the compiled definitions, read once per process.
        picked = db.all(statement, params)
        more = len(picked) > limit
        items = []
        for row in picked[:limit]:
            defn = self.compiled.on(row.procedure_id, db).definition
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
                    cursor=make_cursor(row.due_sort, row.case_id, row.position),
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
                q = q.where(CaseRow.procedure_id.in_(uow.procedure_ids(code)))
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

    def may_start_for(self, actor: Actor, code: str, unit: str, db: Direct | None = None) -> bool:
        """Whether ``actor`` may open a case of ``code`` in ``unit`` for
        someone else: an official of the procedure in that unit (a one-stop
        desk taking a dossier). Read in ``db`` when given (the start's own
        transaction).

        Raises:
            NotPublished: ``code`` has no published version.
        """
        if db is None:
            with self.store.direct(write=False) as own:
                return self.may_start_for(actor, code, unit, own)
        proc_id = self._newest_published(db, code)
        return actor.unit == unit and bool(self.compiled.on(proc_id, db).office_roles & actor.roles)

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
    def verify_audit(self, verifier: Verifier | Keyring | None = None, *, checkpoint: str | None = None) -> AuditReport:
        """Check everything the audit keeps (see :func:`engine.verify.verify_database`)."""
        keys = verifier if isinstance(verifier, Keyring) else Keyring([verifier or self.signer.verifier()])
        return verify_database(self.store, keys, checkpoint=checkpoint, calendar=self.calendar)


__all__ = ["CaseClosed", "CaseService", "CaseView", "Compiled", "InboxItem"]
