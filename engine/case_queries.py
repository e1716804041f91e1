"""Reading cases: one case, its events, the inbox, the case lists and the
steps overdue; and the reads a change starts with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from procedures.messages import t

from .audit import EventRecord
from .calendar import WorkingCalendar
from .compiled import Compiled
from .db import CaseRow, CaseStepRow
from .direct import Direct, Statement
from .errors import NotFound, NotPublished
from .heads import CaseHead
from .keys import Signer
from .machine import Actor, CompiledProcedure
from .rows import (
    NEWEST_PUBLISHED,
    READ_CASE,
    READ_EVENTS,
    READ_REACH,
    code_params,
    inbox_statement,
    make_cursor,
    read_cursor,
    record_of,
    sees,
    state_from,
)
from .store import Store, UnitOfWork
from .views import CaseView, InboxItem

if TYPE_CHECKING:
    from .writing import Writing


class CaseQueries:
    """The reads of :class:`~engine.cases.CaseService`."""

    store: Store
    compiled: Compiled
    signer: Signer
    calendar: WorkingCalendar
    clock: Callable[[], dt.datetime]
    idempotency_lease: float
    writing: Writing
    """how a change is read and written on the store's database (:mod:`engine.writing`)"""

    def machine_of(self, uow: UnitOfWork, row: CaseRow) -> CompiledProcedure:
        return self.compiled.by_id(row.procedure_id, uow)

    def _head(
        self, db: Direct, case_id: int, actor: Actor, read: Statement = READ_CASE, params: Mapping[str, Any] | None = None
    ) -> tuple[CaseHead, CompiledProcedure]:
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
            raise NotFound(t("no case {case}", case=case_id), case_id=case_id)
        return head, machine

    def _steps(self, db: Direct | None, head: CaseHead) -> list[Any]:
        """The step rows (of :data:`READ_STEPS`) of a case read by
        :attr:`Writing.case_read`: on PostgreSQL read with it, on SQLite read in ``db``."""
        return self.writing.steps(db, head)

    @staticmethod
    def _newest_published(db: Direct, code: str) -> int:
        """The id of the version new cases of ``code`` start on.

        Raises:
            NotPublished: ``code`` has no published version.
        """
        proc_id = db.scalar(NEWEST_PUBLISHED, code_params(code))
        if proc_id is None:
            raise NotPublished(t("procedure «{code}» has no published version", code=code))
        return int(proc_id)

    def get(self, actor: Actor, case_id: int, *, db: Direct) -> CaseView:
        """Raises NotFound when the case does not exist or ``actor`` may not see it.

        Officials open cases all day: prebuilt reads, as an action makes
        (one on PostgreSQL, two on SQLite), in ``db`` (a
        :meth:`~engine.store.Store.reading` will do)."""
        head, machine = self._head(db, case_id, actor, self.writing.case_read)
        state = state_from(head, self._steps(db, head))
        return CaseView.of_state(case_id, head.code, head.procedure_version, head.version, state, machine, now=self.clock())

    def events(self, actor: Actor, case_id: int, *, db: Direct) -> list[EventRecord]:
        """The case's events, oldest first, read in ``db`` (one transaction:
        a :meth:`~engine.store.Store.direct` for reading).

        Raises NotFound when the case does not exist or ``actor`` may not see it."""
        self._head(db, case_id, actor, READ_REACH)
        return [record_of(e) for e in db.all(READ_EVENTS, {"b_case": case_id})]

    def inbox(
        self, actor: Actor, *, limit: int = 50, cursor: str | None = None, db: Direct
    ) -> tuple[list[InboxItem], str | None]:
        """The active steps ``actor`` may act on, earliest due first (no due
        time last), one page at a time.

        Each of the actor's roles is read through its own slice of the inbox
        index, already in due order, and the slices are merged: the query
        costs the page size per role, not the size of the backlog.

        One statement, in ``db`` (a :meth:`~engine.store.Store.reading` will do).

        Raises:
            ValueError: ``cursor`` is not one this method returned.
        """
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
        uow: UnitOfWork,
    ) -> tuple[list[CaseView], int | None]:
        """The cases ``actor`` sees, newest first, a page at a time, read in
        ``uow``; the cursor is the id to continue below.

        ``overdue`` keeps open cases past their due time or with an active
        step past its own (``False``: the others).
        """
        now = self.clock()
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

    def may_start_for(self, actor: Actor, code: str, unit: str, *, db: Direct) -> bool:
        """Whether ``actor`` may open a case of ``code`` in ``unit`` for
        someone else: an official of the procedure in that unit (a one-stop
        desk taking a dossier). Read in ``db`` (the start's own transaction).

        Raises:
            NotPublished: ``code`` has no published version.
        """
        proc_id = self._newest_published(db, code)
        return actor.unit == unit and bool(self.compiled.on(proc_id, db).office_roles & actor.roles)

    def overdue(self, *, limit: int = 1000, uow: UnitOfWork) -> list[tuple[int, str, dt.datetime]]:
        """Active steps past their due time, most overdue first, read in ``uow``: ``(case, step, due_at)``."""
        now = self.clock()
        s = CaseStepRow
        rows = uow.session.execute(
            select(s.case_id, s.step_id, s.due_sort)
            .where(s.status == "active", s.due_sort < now)
            .order_by(s.due_sort, s.case_id, s.position)
            .limit(limit)
        ).all()
        return [(r.case_id, r.step_id, r.due_sort) for r in rows]
