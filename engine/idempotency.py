"""Idempotency keys: a request's key claimed in the transaction of its
change, and the stored answer a repeat gets back (service.md section 3)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from procedures.messages import t

from .direct import Direct
from .errors import IdempotencyInFlight, IdempotencyMismatch
from .machine import Actor
from .rows import READ_KEY, TAKE_OVER_KEY
from .store import Store
from .views import CaseView, StoredResponse

if TYPE_CHECKING:
    from .writing import Writing


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's ``Idempotency-Key``, a digest of the request, and how to
    render the response that a repeat of the request will get back."""

    key: str
    request_hash: str
    respond: Callable[[CaseView], tuple[int, str]]
    """The status and the body (a JSON document) of the response to a request that changed the case into this view"""


class IdempotencyKeys:
    """Claiming keys, for :class:`~engine.cases.CaseService`."""

    store: Store
    writing: Writing
    idempotency_lease: float

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
        if db.one(self.writing.claim_key, self.writing.claim(actor.id, idempotency, now)) is not None:
            return None
        return self._not_claimed(db, actor, idempotency, now)

    def _not_claimed(self, db: Direct, actor: Actor, idempotency: Idempotency, now: dt.datetime) -> StoredResponse | None:
        """What a request gets whose claim of the key found it taken (see :meth:`_take_key`)."""
        key = {"b_user": actor.id, "b_key": idempotency.key}
        in_flight = IdempotencyInFlight(
            t("the request with Idempotency-Key «{key}» is still being processed", key=idempotency.key)
        )
        row = db.one(READ_KEY, key)
        if row is None:  # another transaction holds the key (PostgreSQL's lock), or has just let it go
            raise in_flight
        if row.request_hash != idempotency.request_hash:
            raise IdempotencyMismatch(
                t("Idempotency-Key «{key}» was used for another request; use a new key for a new request", key=idempotency.key)
            )
        if row.response is not None and row.status_code is not None:
            return StoredResponse(row.status_code, row.response)
        if (now - row.created_at).total_seconds() < self.idempotency_lease:
            raise in_flight
        abandoned = now - dt.timedelta(seconds=self.idempotency_lease)
        if db.run(TAKE_OVER_KEY, {**key, "b_abandoned": abandoned, "created_at": now}) != 1:
            raise in_flight
        return None
