"""PostgreSQL's busiest request, a case change by the bearer of a token, in
two statements: on a thread, or awaited on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, cast

from procedures.messages import t

from .changes import CaseChanges, Change
from .connection import duplicate_key
from .direct import Ask, Direct, run_steps, run_steps_async
from .errors import NotFound
from .heads import CaseHead, SignedInRow
from .idempotency import Idempotency
from .machine import Actor
from .rows import READ_SIGNED_IN_CASE, sees
from .store import AsyncStatements
from .users import User, token_lookup
from .views import CaseView, StoredResponse


@dataclass(frozen=True, slots=True)
class SignedIn:
    """What a signed-in change came to: the token's user, and the change's
    result, or None when it is to be made again, as :attr:`again`, in a
    writing transaction of the caller's (:meth:`~engine.changes.CaseChanges.change`)."""

    user: User
    result: CaseView | StoredResponse | None
    again: Change


class SignedInChanges(CaseChanges):
    """The signed-in change paths of :class:`~engine.cases.CaseService`."""

    def change_signed_in(
        self,
        token: str,
        case_id: int,
        change: Callable[[Actor], Change],
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
        db: Direct,
    ) -> SignedIn | None:
        """PostgreSQL: the change ``change(actor)`` (:meth:`acting` or
        :meth:`withdrawing`) by the bearer of ``token``, with the token
        checked first as service.md section 3 orders it; ``db`` is a
        :meth:`~engine.store.Store.statements`, each statement its own
        transaction. None: the token is unknown or revoked.

        The service's busiest request, in two statements: one reads the
        token's user, the case with its steps and the key's earlier use
        (:data:`READ_SIGNED_IN_CASE`), and one writes the change with the
        answer and the key, guarded by the version read (:func:`write_change`
        with ``insert``). A transaction takes four round trips for the same,
        with its ``BEGIN`` and ``COMMIT``. Whatever is not plain, a key used
        before, a case that moved on, a key claimed or stored meanwhile, comes
        back without a result, for the caller to make again in a transaction
        (:attr:`SignedIn.again`), which claims the key first and so answers it
        as always.

        Raises:
            as :meth:`act`.
        """
        lookup = token_lookup(token)
        if lookup is None:
            return None
        return run_steps(self._signed_in(lookup, case_id, change, if_match, idempotency), db)

    async def change_signed_in_async(
        self,
        statements: AsyncStatements,
        token: str,
        case_id: int,
        change: Callable[[Actor], Change],
        *,
        if_match: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> SignedIn | None:
        """:meth:`change_signed_in` on the event loop ``statements`` was
        opened on, its two statements awaited on ``statements``' connections.

        A worker's actions then need no thread each: with four threads
        taking turns at the GIL between round trips, handing it over had
        cost a worker more than the actions' own work.
        """
        lookup = token_lookup(token)
        if lookup is None:
            return None
        async with statements.statements() as db:
            steps = self._signed_in(lookup, case_id, change, if_match, idempotency, compile_here=False)
            return await run_steps_async(steps, db)

    def _signed_in(
        self,
        lookup: str,
        case_id: int,
        change: Callable[[Actor], Change],
        if_match: int | None,
        idempotency: Idempotency | None,
        *,
        compile_here: bool = True,
    ) -> Generator[Ask, Any, SignedIn | None]:
        """The statements of :meth:`change_signed_in`, asked one at a time
        (see :func:`~engine.direct.run_steps`); None for an unknown token.

        Not ``compile_here`` (on the event loop), a case of a procedure
        version not compiled yet in this process is such a change too: the
        transaction, in a thread, compiles it (tens of milliseconds, once),
        which on the loop would hold up every request of the worker."""
        key = idempotency.key if idempotency is not None else None
        head: SignedInRow | None = yield READ_SIGNED_IN_CASE, {"h": lookup, "b_case": case_id, "b_key": key}
        if head is None:
            return None
        user = User(head.u_id, head.u_name, head.u_unit, tuple(head.u_roles), tuple(head.u_permissions))
        actor = user.actor
        if head.id is None:
            raise NotFound(t("no case {case}", case=case_id), case_id=case_id)
        machine = self.compiled.ready(head.procedure_id)
        if machine is None:
            if not compile_here:
                return SignedIn(user, None, change(actor))
            machine = yield from self.compiled.asking(head.procedure_id)
        if not sees(actor, head.applicant, head.unit, machine):
            raise NotFound(t("no case {case}", case=case_id), case_id=case_id)
        doing = change(actor)
        if idempotency is not None and head.k_request_hash is not None:
            status_code = head.k_status_code  # both null while the first request runs
            if head.k_request_hash == idempotency.request_hash and head.k_response is not None and status_code is not None:
                return SignedIn(user, StoredResponse(status_code, head.k_response), doing)
            return SignedIn(user, None, doing)
        plan = self._plan(None, actor, cast(CaseHead, head), machine, if_match, doing, idempotency, claimed=False)
        (write, values), *_ = plan.writes
        try:
            moved = yield write, values
        except Exception as exc:
            if not duplicate_key(exc):  # not the key, stored meanwhile
                raise
            return SignedIn(user, None, doing)
        return SignedIn(user, plan.view if moved is not None and moved[0] == 1 else None, doing)
