"""PostgreSQL's busiest request, a case change by the bearer of a token, in
two statements: on a thread, or awaited on the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

from .changes import CaseChanges, Change
from .connection import duplicate_key
from .direct import Ask, run_steps, run_steps_async
from .errors import NotFound
from .heads import CaseHead, SignedInRow
from .idempotency import Idempotency
from .machine import Actor
from .rows import READ_SIGNED_IN_CASE, sees
from .store import AsyncStatements
from .users import User, token_lookup
from .views import CaseView, StoredResponse

T = TypeVar("T")


async def _aside(executor: Executor | None, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` in a thread of ``executor`` (None: the
    loop's default), with the caller's context variables, as
    :func:`asyncio.to_thread` runs it in the default one."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


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
        head: SignedInRow | None = yield READ_SIGNED_IN_CASE, {"h": lookup, "b_case": case_id, "b_key": key}
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
            status_code = head.k_status_code  # both null while the first request runs
            if head.k_request_hash == idempotency.request_hash and head.k_response is not None and status_code is not None:
                return user, StoredResponse(status_code, head.k_response), doing
            return user, None, doing
        plan = self._plan(None, actor, cast(CaseHead, head), machine, if_match, doing, idempotency, claimed=False)
        (write, values), *_ = plan.writes
        try:
            moved = yield write, values
        except Exception as exc:
            if not duplicate_key(exc):  # not the key, stored meanwhile
                raise
            return user, None, doing
        return user, (plan.view if moved is not None and moved[0] == 1 else None), doing
