"""How cases sit in the database: the statements of the action path and the
inbox, built once, and the conversions between rows and plain states.

The service (:mod:`engine.cases`) runs these on its unit of work's
connection; they name tables rather than mapped classes, so executing them
skips the ORM's bookkeeping, which cost more than the database work on the
hot path.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, tuple_, union_all, update

from .audit import EventRecord
from .db import NO_DUE, CaseRow, CaseStepRow, EventRow, UTCDateTime
from .errors import GuidedReturn
from .machine import Actor, CaseState, CompiledProcedure, StepState


def sees(actor: Actor, applicant: str, unit: str, machine: CompiledProcedure) -> bool:
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
READ_CASE = select(_CASES).where(_CASES.c.id == bindparam("b_case"))
READ_REACH = select(_CASES.c.applicant, _CASES.c.unit, _CASES.c.procedure_id).where(_CASES.c.id == bindparam("b_case"))
READ_STEPS = (
    select(*(_STEPS.c[k] for k in _STEP_STATE)).where(_STEPS.c.case_id == bindparam("b_case")).order_by(_STEPS.c.position)
)
_CASE_COLUMNS = ("status", "due_at", "paused_since", "guided", "version", "event_count", "head_hash")
UPDATE_CASE_KEEP_DATA = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_case"), _CASES.c.version == bindparam("b_version"))
    .values({k: bindparam(k) for k in _CASE_COLUMNS})
)
UPDATE_CASE = UPDATE_CASE_KEEP_DATA.values(data=bindparam("data"))
UPDATE_STEP = (
    update(_STEPS)
    .where(_STEPS.c.case_id == bindparam("b_case"), _STEPS.c.position == bindparam("b_position"))
    .values({k: bindparam(k) for k in ("status", "activated_at", "due_at", "due_sort", "completed_at", "outcome", "actor")})
)
INSERT_EVENT = insert(cast(Table, EventRow.__table__))
INSERT_CASE = insert(_CASES).returning(_CASES.c.id)
INSERT_STEP = insert(_STEPS)
CLOSE_CHAIN = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_case"))
    .values(event_count=bindparam("event_count"), head_hash=bindparam("head_hash"))
)


@functools.lru_cache(maxsize=64)
def inbox_statement(roles: int, paged: bool) -> Any:
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


def step_tuple(s: StepState) -> tuple[Any, ...]:
    return (s.status, s.activated_at, s.due_at, s.completed_at, s.outcome, s.actor)


def _guided(value: Mapping[str, Any] | None) -> GuidedReturn | None:
    return GuidedReturn(**{**value, "missing": tuple(value.get("missing", ()))}) if value else None


def state_from(head: Any, step_rows: Iterable[Any]) -> CaseState:
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


def step_columns(s: StepState) -> dict[str, Any]:
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
    return state_from(row, ([getattr(s, k) for k in _STEP_STATE] for s in ordered))


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def event_columns(record: EventRecord) -> dict[str, Any]:
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


# -- keyset cursors of the inbox --------------------------------------------------
def make_cursor(due_sort: dt.datetime, case_id: int, position: int) -> str:
    raw = json.dumps([due_sort.astimezone(dt.UTC).isoformat(), case_id, position]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(text: str) -> tuple[dt.datetime, int, int]:
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
