"""The case service as a test calls it: each call in a transaction of its own.

:class:`~engine.cases.CaseService` works in the transaction its caller gives
it; a request opens one per call, and so does :class:`Transacting` for a
call made without ``db`` (or ``uow``), committing it as the block ends and
rolling it back when the call raises. A call given one runs in it, as in the
service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from concurrent.futures import Executor
from typing import Any

from engine.cases import CaseService
from engine.changes import Change
from engine.direct import Direct
from engine.machine import Actor
from engine.signed_in import SignedIn
from engine.store import UnitOfWork
from engine.views import CaseView, StoredResponse


class Transacting(CaseService):
    """A :class:`CaseService` whose calls without a transaction get one each (see the module)."""

    @classmethod
    def of(cls, service: CaseService) -> Transacting:
        """One on ``service`` 's store, key, calendar, clock and compiled versions."""
        return cls(
            service.store,
            signer=service.signer,
            calendar=service.calendar,
            clock=service.clock,
            compiled=service.compiled,
            idempotency_lease=service.idempotency_lease,
        )

    def start(self, actor: Actor, *, db: Direct | None = None, **how: Any) -> CaseView:  # type: ignore[override]
        if db is not None:
            return super().start(actor, db=db, **how)
        with self.store.direct() as own:
            return super().start(actor, db=own, **how)

    def act(self, actor: Actor, case_id: int, *, db: Direct | None = None, **how: Any) -> CaseView | StoredResponse:  # type: ignore[override]
        if db is not None:
            return super().act(actor, case_id, db=db, **how)
        with self.store.direct() as own:
            return super().act(actor, case_id, db=own, **how)

    def withdraw(self, actor: Actor, case_id: int, *, db: Direct | None = None, **how: Any) -> CaseView | StoredResponse:  # type: ignore[override]
        if db is not None:
            return super().withdraw(actor, case_id, db=db, **how)
        with self.store.direct() as own:
            return super().withdraw(actor, case_id, db=own, **how)

    def change(  # type: ignore[override]
        self, actor: Actor, case_id: int, change: Change, *, db: Direct | None = None, **how: Any
    ) -> CaseView | StoredResponse:
        if db is not None:
            return super().change(actor, case_id, change, db=db, **how)
        with self.store.direct() as own:
            return super().change(actor, case_id, change, db=own, **how)

    def get(self, actor: Actor, case_id: int, db: Direct | None = None) -> CaseView:  # type: ignore[override]
        if db is not None:
            return super().get(actor, case_id, db=db)
        with self.store.reading() as own:
            return super().get(actor, case_id, db=own)

    def events(self, actor: Actor, case_id: int, *, db: Direct | None = None) -> list[Any]:  # type: ignore[override]
        if db is not None:
            return super().events(actor, case_id, db=db)
        with self.store.direct(write=False) as own:
            return super().events(actor, case_id, db=own)

    def inbox(self, actor: Actor, *, db: Direct | None = None, **how: Any) -> Any:  # type: ignore[override]
        if db is not None:
            return super().inbox(actor, db=db, **how)
        with self.store.reading() as own:
            return super().inbox(actor, db=own, **how)

    def may_start_for(self, actor: Actor, code: str, unit: str, db: Direct | None = None) -> bool:  # type: ignore[override]
        if db is not None:
            return super().may_start_for(actor, code, unit, db=db)
        with self.store.direct(write=False) as own:
            return super().may_start_for(actor, code, unit, db=own)

    def list_cases(self, actor: Actor, *, uow: UnitOfWork | None = None, **how: Any) -> Any:  # type: ignore[override]
        if uow is not None:
            return super().list_cases(actor, uow=uow, **how)
        with self.store.unit(write=False) as own:
            return super().list_cases(actor, uow=own, **how)

    def overdue(self, *, limit: int = 1000, uow: UnitOfWork | None = None) -> list[tuple[int, str, dt.datetime]]:  # type: ignore[override]
        if uow is not None:
            return super().overdue(limit=limit, uow=uow)
        with self.store.unit(write=False) as own:
            return super().overdue(limit=limit, uow=own)

    def change_signed_in(self, token: str, case_id: int, change: Any, *, db: Direct | None = None, **how: Any) -> Any:  # type: ignore[override]
        """On PostgreSQL's autocommit statements; a change that comes back
        to be made again is made in a transaction, as a worker makes it:
        ``(user, result)``, or None for an unknown token."""
        if db is not None:
            done = super().change_signed_in(token, case_id, change, db=db, **how)
        else:
            with self.store.statements() as own:
                done = super().change_signed_in(token, case_id, change, db=own, **how)
        return _finished(self, done, case_id, how)


def _finished(service: CaseService, done: SignedIn | None, case_id: int, how: dict[str, Any]) -> Any:
    if done is None:
        return None
    if done.result is not None:
        return done.user, done.result
    with service.store.direct() as db:
        return done.user, service.change(done.user.actor, case_id, done.again, db=db, **how)


async def change_signed_in_async(
    service: CaseService, statements: Any, token: str, case_id: int, change: Any, *, executor: Executor | None = None, **how: Any
) -> Any:
    """:meth:`CaseService.change_signed_in_async`; a change to make again is
    made in a transaction in a thread of ``executor`` (the loop's default
    one when None), as a worker makes it in its transaction threads."""
    done = await service.change_signed_in_async(statements, token, case_id, change, **how)
    finish = functools.partial(_finished, service, done, case_id, how)
    return await asyncio.get_running_loop().run_in_executor(executor, finish)
