"""How cases sit in the database: the statements of the action path and the
inbox, built once, and the conversions between rows and plain states.

The service (:mod:`engine.cases`) runs the hot paths' statements straight on
the DB-API connection (:mod:`engine.direct`) and the inbox on its unit of
work's connection; they name tables rather than mapped classes, so none of
them pays for the ORM's bookkeeping, which cost more than the database work.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    column,
    func,
    insert,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .audit import EventRecord
from .codes import code_key, exact_key
from .db import NO_DUE, CaseRow, CaseStepRow, EventRow, IdempotencyRow, ProcedureRow, UserRow, UTCDateTime
from .direct import Statement
from .errors import GuidedReturn
from .heads import CaseHead
from .machine import Actor, CaseState, CompiledProcedure, StepState


def sees(actor: Actor, applicant: str, unit: str, machine: CompiledProcedure) -> bool:
    """service.md section 2: the applicant, a holder of one of the
    procedure's office roles in the case's unit, or an admin."""
    if "admin" in actor.permissions or applicant == actor.id:
        return True
    return actor.unit == unit and bool(machine.office_roles & actor.roles)


_STEP_STATE = ("status", "activated_at", "due_at", "completed_at", "outcome", "actor")
"""A step row's columns that make its :class:`StepState`, in its field order."""

# The hot paths' statements, built once and run on the DB-API connection
# (engine.direct): they name the tables, not the mapped classes.
_CASES = cast(Table, CaseRow.__table__)
_STEPS = cast(Table, CaseStepRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_IDEMPOTENCY = cast(Table, IdempotencyRow.__table__)
_PROCEDURES = cast(Table, ProcedureRow.__table__)
_USERS = cast(Table, UserRow.__table__)
_STEP_WRITES = ("status", "activated_at", "due_at", "due_sort", "completed_at", "outcome", "actor")
EVENT_KEYS = (
    "case_id",
    "seq",
    "at",
    "actor",
    "type",
    "step",
    "outcome",
    "comment",
    "data",
    "decision",
    "prev_hash",
    "hash",
    "signature",
    "key_id",
)
NEW_CASE_KEYS = (
    "procedure_id",
    "code",
    "procedure_version",
    "unit",
    "applicant",
    "status",
    "data",
    "created_at",
    "due_at",
    "paused_since",
    "guided",
    "version",
    "event_count",
    "head_hash",
)
NEW_STEP_KEYS = ("case_id", "position", "step_id", "role", "role_kind", "unit", "applicant", *_STEP_WRITES)

READ_CASE = Statement(select(_CASES).where(_CASES.c.id == bindparam("b_case")))
READ_REACH = Statement(select(_CASES.c.applicant, _CASES.c.unit, _CASES.c.procedure_id).where(_CASES.c.id == bindparam("b_case")))
READ_EVENTS = Statement(select(_EVENTS).where(_EVENTS.c.case_id == bindparam("b_case")).order_by(_EVENTS.c.seq))
READ_STEPS = Statement(
    select(*(_STEPS.c[k] for k in _STEP_STATE)).where(_STEPS.c.case_id == bindparam("b_case")).order_by(_STEPS.c.position)
)


@functools.lru_cache(maxsize=64)
def update_case(columns: tuple[str, ...]) -> Statement:
    """The version-guarded update of a case row: ``version``,
    ``event_count`` and ``head_hash`` always, and ``columns`` of the case's
    state (parameters: those, ``b_case`` and ``b_version``)."""
    return Statement(
        update(_CASES)
        .where(_CASES.c.id == bindparam("b_case"), _CASES.c.version == bindparam("b_version"))
        .values({k: bindparam(k) for k in (*columns, "version", "event_count", "head_hash")})
    )


def case_changes(head: CaseHead, state: CaseState) -> dict[str, Any]:
    """The columns of the case's state that differ from its row ``head``
    (of :data:`READ_CASE`), with their new values; only those are written."""
    guided = state.guided.as_dict() if state.guided else None
    new = {
        "status": state.status,
        "data": state.data,
        "due_at": state.due_at,
        "paused_since": state.paused_since,
        "guided": guided,
    }
    return {k: v for k, v in new.items() if getattr(head, k) != v}


@functools.lru_cache(maxsize=128)
def update_step(columns: tuple[str, ...]) -> Statement:
    """The update of one step row's ``columns`` (parameters: those, and
    ``b_case``, ``b_position``), built once per set of columns.

    Only what changed is written: SQLite rewrites the entries of every index
    that holds a column named in the ``SET`` list, changed or not, and the
    inbox indexes hold ``due_sort``.
    """
    return Statement(
        update(_STEPS)
        .where(_STEPS.c.case_id == bindparam("b_case"), _STEPS.c.position == bindparam("b_position"))
        .values({k: bindparam(k) for k in columns})
    )


def step_changes(
    case_id: int, before: Iterable[Sequence[Any]], after: Iterable[StepState]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """The step rows an action changed, grouped by the columns that changed
    (each group is one :func:`update_step` statement); ``before`` are the
    rows of :data:`READ_STEPS`."""
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for position, (old, state) in enumerate(zip(before, after, strict=True)):
        new = step_tuple(state)
        if new == old:
            continue
        values: dict[str, Any] = {"b_case": case_id, "b_position": position}
        columns = []
        for name, was, now in zip(_STEP_STATE, old, new, strict=True):
            if was != now:
                values[name] = now
                columns.append(name)
                if name == "due_at":
                    values["due_sort"] = now or NO_DUE
                    columns.append("due_sort")
        out.setdefault(tuple(columns), []).append(values)
    return out


INSERT_EVENT = Statement(insert(_EVENTS), keys=EVENT_KEYS)
INSERT_CASE = Statement(insert(_CASES).returning(_CASES.c.id), keys=NEW_CASE_KEYS)
INSERT_STEP = Statement(insert(_STEPS), keys=NEW_STEP_KEYS)
CLOSE_CHAIN = Statement(
    update(_CASES)
    .where(_CASES.c.id == bindparam("b_case"))
    .values(event_count=bindparam("event_count"), head_hash=bindparam("head_hash"))
)
READ_PROCEDURE = Statement(
    select(_PROCEDURES.c.id, _PROCEDURES.c.code, _PROCEDURES.c.version, _PROCEDURES.c.body, _PROCEDURES.c.content_hash).where(
        _PROCEDURES.c.id == bindparam("b_id")
    )
)
USER_EXISTS = Statement(select(_USERS.c.id).where(_USERS.c.id == bindparam("b_user")))


def of_code(table: Table) -> Any:
    """The rows of the code named by :func:`code_params`' parameters: its
    key, or a row kept under its exact spelling (migration 0003_code_key)."""
    return table.c.code_key.in_([bindparam("b_key"), bindparam("b_exact")])


def exact_first(table: Table) -> Any:
    """Order a code's rows so that those kept under its exact spelling come first."""
    return case((table.c.code_key == bindparam("b_exact"), 0), else_=1)


def code_params(code: str) -> dict[str, str]:
    """The parameters of :func:`of_code` for ``code``."""
    return {"b_key": code_key(code), "b_exact": exact_key(code)}


NEWEST_PUBLISHED = Statement(
    select(_PROCEDURES.c.id)
    .where(of_code(_PROCEDURES), _PROCEDURES.c.status == "published")
    .order_by(exact_first(_PROCEDURES), _PROCEDURES.c.version.desc())
    .limit(1)
)
"""The version new cases of a code start on (parameters: :func:`code_params`)."""

# -- idempotency keys: claimed (insert unless present), read, taken over, answered, released
_I = _IDEMPOTENCY.c
_KEY = (_I.user_id == bindparam("b_user"), _I.key == bindparam("b_key"))
_NEW_KEY: dict[str, Any] = {"user_id": bindparam("b_user"), "key": bindparam("b_key"), "request_hash": bindparam("request_hash")}
CLAIM_KEY = {
    "sqlite": Statement(
        sqlite_insert(_IDEMPOTENCY)
        .values(**_NEW_KEY, created_at=bindparam("created_at"))
        .on_conflict_do_nothing()
        .returning(_I.key)
    ),
    # PostgreSQL: only under the key's advisory lock, taken in the same
    # statement (one round trip): no row back, and no row to read, means
    # another transaction holds the key.
    "postgresql": Statement(
        pg_insert(_IDEMPOTENCY)
        .from_select(
            ["user_id", "key", "request_hash", "created_at"],
            select(
                bindparam("b_user", type_=String),
                bindparam("b_key", type_=String),
                bindparam("request_hash", type_=String),
                bindparam("created_at", type_=UTCDateTime()),
            ).where(func.pg_try_advisory_xact_lock(bindparam("lock", type_=BigInteger))),
        )
        .on_conflict_do_nothing()
        .returning(_I.key)
    ),
}
READ_KEY = Statement(select(_I.request_hash, _I.status_code, _I.response, _I.created_at).where(*_KEY))
TAKE_OVER_KEY = Statement(
    update(_IDEMPOTENCY)
    .where(*_KEY, _I.created_at <= bindparam("b_abandoned"), _I.status_code.is_(None))
    .values(created_at=bindparam("created_at"))
)
_RESPONSE_TEXT = bindparam("response", type_=Text)
ANSWER_KEY = {
    # The response comes as JSON text, the very bytes the HTTP answer
    # carries: SQLite keeps JSON as text, PostgreSQL parses it in the cast.
    "sqlite": Statement(update(_IDEMPOTENCY).where(*_KEY).values(status_code=bindparam("status_code"), response=_RESPONSE_TEXT)),
    "postgresql": Statement(
        update(_IDEMPOTENCY).where(*_KEY).values(status_code=bindparam("status_code"), response=sql_cast(_RESPONSE_TEXT, JSON))
    ),
}


def key_lock(user_id: str, key: str) -> int:
    """The advisory lock number of one user's idempotency key: 64 bits of its digest."""
    digest = hashlib.sha256(f"{user_id}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@functools.lru_cache(maxsize=64)
def inbox_statement(roles: int, paged: bool) -> Statement:
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
    return Statement(
        select(merged, _CASES.c.code, _CASES.c.procedure_version, _CASES.c.procedure_id)
        .join(_CASES, _CASES.c.id == merged.c.case_id)
        .order_by(merged.c.due_sort, merged.c.case_id, merged.c.position)
        .limit(bindparam("size"))
    )


def step_tuple(s: StepState) -> tuple[Any, ...]:
    return (s.status, s.activated_at, s.due_at, s.completed_at, s.outcome, s.actor)


def _guided(value: Mapping[str, Any] | None) -> GuidedReturn | None:
    return GuidedReturn(**{**value, "missing": tuple(value.get("missing", ()))}) if value else None


def state_from(head: CaseHead, step_rows: Iterable[Any]) -> CaseState:
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
        "key_id": record.key_id,
    }


def record_of(row: Any) -> EventRecord:
    """An event as the audit takes it, from an ``events`` row (mapped or of :data:`READ_EVENTS`)."""
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
        key_id=row.key_id,
    )


# -- keyset cursors of the inbox --------------------------------------------------
CURSOR_FORM = r"^[0-9]{1,18}\.[0-9]{1,10}\.[0-9]{1,5}$"
"""An inbox cursor: ``DUE.CASE.POSITION``, the last item's due time (in
microseconds since 1970, UTC), case id and step position. Every text of
this form is a cursor (a place in the list to go on after), so the form
the API documents is the whole rule."""
_CURSOR = re.compile(CURSOR_FORM)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LAST_DUE = (NO_DUE - _EPOCH) // dt.timedelta(microseconds=1)
_LAST_ID = 2**31 - 1


def make_cursor(due_sort: dt.datetime, case_id: int, position: int) -> str:
    """The cursor after this item (see :data:`CURSOR_FORM`).

    >>> make_cursor(dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC), 7, 2)
    '1803862800000000.7.2'
    """
    return f"{(due_sort - _EPOCH) // dt.timedelta(microseconds=1)}.{case_id}.{position}"


def read_cursor(text: str) -> tuple[dt.datetime, int, int]:
    """The place a cursor names; numbers past the last place a list can
    have (no due time, the largest id) stand for that place.

    Raises:
        ValueError: ``text`` is not of the form :data:`CURSOR_FORM`.
    """
    if not _CURSOR.fullmatch(text):
        raise ValueError(f"not a cursor of this list (DUE.CASE.POSITION, digits): {text!r}")
    due, case_id, position = (int(part) for part in text.split("."))
    return _EPOCH + dt.timedelta(microseconds=min(due, _LAST_DUE)), min(case_id, _LAST_ID), position


# -- PostgreSQL: an action in two statements ----------------------------------------------
# On SQLite a statement is a function call; on PostgreSQL it is a round trip
# to the server, and each costs the worker more CPU than the rest of the
# action's own work (psycopg, the socket and the thread's hand-overs of the
# GIL). So PostgreSQL reads a case with its steps (and claims the action's
# idempotency key) in one statement and writes the whole change in another:
# the guarded case update, the changed steps, the events and the stored
# answer, each part conditioned on the guarded update, so that a case that
# moved on meanwhile changes nothing and the action is re-applied as on
# SQLite.
def _quoted(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{n}"' for n in names)


_STEP_ARRAYS = tuple(f"s_{k}" for k in _STEP_STATE)
"""The read's step columns, each an array in position order"""
_READ_COLUMNS = (
    *(column(c.key, c.type) for c in _CASES.c),
    # The step arrays come as psycopg loads them, each element converted by
    # steps_read: SQLAlchemy's ARRAY conversion, element by element through
    # the column type's processor, had cost a tenth of an action's work.
    *(column(f"s_{k}") for k in _STEP_STATE),
)
_STEP_INSTANTS = tuple(f"s_{k}" for k in _STEP_STATE if isinstance(_STEPS.c[k].type, UTCDateTime))
_STEPS_OF_CASE = (
    "SELECT "
    + ", ".join(f'array_agg(s."{k}" ORDER BY s.position) AS "s_{k}"' for k in _STEP_STATE)
    + " FROM case_steps AS s WHERE s.case_id = c.id"
)
_CASE_WITH_STEPS = f"SELECT {_quoted(_CASES.c.keys(), 'c.')}, {_quoted(_STEP_ARRAYS, 'st.')}{{claimed}} FROM cases AS c CROSS JOIN LATERAL ({_STEPS_OF_CASE}) AS st WHERE c.id = :b_case"
READ_CASE_STEPS = Statement(text(_CASE_WITH_STEPS.format(claimed="")).columns(*_READ_COLUMNS))
"""PostgreSQL: a case's row and its steps' state, in one statement (parameter ``b_case``)"""
READ_CASE_STEPS_CLAIM = Statement(
    text(
        "WITH claim AS (INSERT INTO idempotency (user_id, key, request_hash, created_at)"
        " SELECT CAST(:b_user AS VARCHAR), CAST(:b_key AS VARCHAR), CAST(:request_hash AS VARCHAR), :created_at"
        " WHERE pg_try_advisory_xact_lock(CAST(:lock AS BIGINT)) ON CONFLICT DO NOTHING RETURNING 1) "
        + _CASE_WITH_STEPS.format(claimed=", (SELECT count(*) FROM claim) AS claimed")
    )
    .bindparams(bindparam("created_at", type_=UTCDateTime()))
    .columns(*_READ_COLUMNS, column("claimed", Integer))
)
"""PostgreSQL: :data:`READ_CASE_STEPS` after the claim of :data:`CLAIM_KEY`
(its parameters too): ``claimed`` is 1 when this transaction has the key.
The claim is made whether or not the caller may see the case; a refusal
rolls it back with the rest."""


_SIGNED_IN_USER = ("id", "name", "unit", "roles", "permissions")
_KNOWN_KEY = ("request_hash", "status_code", "response")
READ_SIGNED_IN_CASE = Statement(
    text(
        "SELECT "
        + ", ".join(f'u."{k}" AS "u_{k}"' for k in _SIGNED_IN_USER)
        + f", {_quoted(_CASES.c.keys(), 'c.')}, {_quoted(_STEP_ARRAYS, 'st.')}, "
        + ", ".join(f'k."{k}" AS "k_{k}"' for k in _KNOWN_KEY)
        + " FROM tokens AS t JOIN users AS u ON u.id = t.user_id"
        " LEFT JOIN cases AS c ON c.id = :b_case"
        f" LEFT JOIN LATERAL ({_STEPS_OF_CASE}) AS st ON true"
        " LEFT JOIN idempotency AS k ON k.user_id = u.id AND k.key = CAST(:b_key AS VARCHAR)"
        " WHERE t.token_hash = :h AND t.revoked_at IS NULL"
    ).columns(
        *(column(f"u_{k}", _USERS.c[k].type) for k in _SIGNED_IN_USER),
        *_READ_COLUMNS,
        *(column(f"k_{k}", _IDEMPOTENCY.c[k].type) for k in _KNOWN_KEY),
    )
)
"""PostgreSQL: everything a signed-in case change reads, in one statement:
the token's user (``u_`` columns; no row for an unknown or revoked token,
parameter ``h``, the token's hash), the case with its steps as
:data:`READ_CASE_STEPS` (NULL columns when there is no case ``b_case``),
and the user's idempotency key ``b_key`` when it was used before (``k_``
columns, else NULL)."""


def steps_read(head: Any) -> list[tuple[Any, ...]]:
    """The step rows (as :data:`READ_STEPS` gives them) of a
    :data:`READ_CASE_STEPS` row."""
    arrays = [getattr(head, k) or () for k in _STEP_ARRAYS]
    for i, k in enumerate(_STEP_ARRAYS):
        if k in _STEP_INSTANTS:  # PostgreSQL's timestamp is UTC without its offset (see UTCDateTime)
            arrays[i] = [None if v is None else v.replace(tzinfo=dt.UTC) for v in arrays[i]]
    return list(zip(*arrays, strict=True))


_EVENT_SET = EVENT_KEYS[1:]


_POSTGRES = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
_TIMESTAMP = UTCDateTime()
"""How an instant goes into PostgreSQL's ``timestamp`` columns"""


def _record_types(table: Table, names: Iterable[str]) -> dict[str, str]:
    """PostgreSQL's type of each named column, for ``json_to_recordset``.

    Without the length of a ``VARCHAR(n)``: an explicit cast to it would cut
    a longer text short, where writing it to the column refuses it."""
    return {k: re.sub(r"\(\d+\)", "", table.c[k].type.compile(dialect=_POSTGRES)) for k in names}


_STEP_RECORD = _record_types(_STEPS, ("position", *_STEP_WRITES))
_EVENT_RECORD = _record_types(_EVENTS, _EVENT_SET)


def _rows_of(parameter: str, types: Mapping[str, str]) -> str:
    """The rows of a JSON array of objects given as the text ``parameter``.

    One text per table: psycopg's dumping of a list parameter (it inspects
    each list to choose the array's type) had cost a third of the worker's
    time of a whole action, with an array per column."""
    record = ", ".join(f'"{k}" {t}' for k, t in types.items())
    return f"json_to_recordset(CAST(:{parameter} AS JSON)) AS v({record})"


KeyWrite = Literal["fill", "insert"] | None
"""How :func:`write_change` stores the answer under the request's
idempotency key: ``fill`` the row this transaction claimed, ``insert`` it
whole (a change read and written in two statements, without a claim), or
None (no key)."""


@functools.lru_cache(maxsize=64)
def write_change(columns: tuple[str, ...], answer: KeyWrite) -> Statement:
    """PostgreSQL: the whole write of one change, one statement; it returns
    1 when the case was still at ``b_version`` (and is changed), 0 when
    another transaction changed it first (and nothing is written).

    Parameters: those of :func:`update_case` for ``columns``; ``b_steps``,
    the changed steps (:func:`changed_steps`); ``b_events``, the events
    (:func:`event_rows`); with ``fill``,
    those of :data:`ANSWER_KEY`; with ``insert``, those and
    ``request_hash``, ``created_at`` and ``lock`` (the key's advisory lock,
    :func:`key_lock`).

    With ``insert`` it also returns 0, and writes nothing, when another
    transaction holds the key's lock (its claim of the key, in flight); and
    a key stored meanwhile fails the whole statement on the key's primary
    key. Either way the caller learns nothing final, and starts over in a
    transaction that claims the key first.
    """
    sets = ", ".join(f'"{k}" = :{k}' for k in (*columns, "version", "event_count", "head_hash"))
    step_sets = ", ".join(f'"{k}" = v."{k}"' for k in _STEP_WRITES)
    locked = " AND pg_try_advisory_xact_lock(CAST(:lock AS BIGINT))" if answer == "insert" else ""
    parts = [
        f'moved AS (UPDATE cases SET {sets} WHERE id = :b_case AND "version" = :b_version{locked} RETURNING id)',
        f"stepped AS (UPDATE case_steps AS s SET {step_sets} FROM moved, {_rows_of('b_steps', _STEP_RECORD)}"
        ' WHERE s.case_id = moved.id AND s."position" = v."position")',
        f"logged AS (INSERT INTO events ({_quoted(EVENT_KEYS)}) SELECT moved.id, "
        + ", ".join(f'v."{k}"' for k in _EVENT_SET)
        + f' FROM moved, {_rows_of("b_events", _EVENT_RECORD)} ORDER BY v."seq")',
    ]
    if answer == "fill":
        parts.append(
            "answered AS (UPDATE idempotency SET status_code = :status_code, response = CAST(:response AS JSON)"
            " WHERE user_id = :b_user AND key = :b_key AND EXISTS (SELECT FROM moved))"
        )
    elif answer == "insert":
        parts.append(
            "answered AS (INSERT INTO idempotency (user_id, key, request_hash, created_at, status_code, response)"
            " SELECT CAST(:b_user AS VARCHAR), CAST(:b_key AS VARCHAR), CAST(:request_hash AS VARCHAR), :created_at,"
            " CAST(:status_code AS INTEGER), CAST(:response AS JSON) FROM moved)"
        )
    binds = [bindparam(k, type_=_CASES.c[k].type) for k in columns if k in ("due_at", "paused_since", "data", "guided")]
    if answer == "insert":
        binds.append(bindparam("created_at", type_=UTCDateTime()))
    return Statement(
        text(f"WITH {', '.join(parts)} SELECT count(*) AS moved FROM moved").bindparams(*binds).columns(column("moved", Integer))
    )


def _timestamp_text(instant: dt.datetime) -> str:
    """An instant as PostgreSQL's ``timestamp`` columns take it, in text."""
    bound = _TIMESTAMP.process_bind_param(instant, _POSTGRES)
    assert bound is not None
    return bound.isoformat()


def changed_steps(before: Iterable[Sequence[Any]], after: Iterable[StepState]) -> dict[str, str]:
    """The ``b_steps`` parameter of :func:`write_change`: every column of
    each step row whose state differs from ``before`` (rows of
    :data:`READ_STEPS`), as a JSON array of objects.

    PostgreSQL writes the whole row either way, and keeps an update off the
    indexes (a HOT update) when no indexed value changes, whatever the
    ``SET`` list names."""
    rows = []
    for position, (old, state) in enumerate(zip(before, after, strict=True)):
        if step_tuple(state) == tuple(old):
            continue
        row: dict[str, Any] = {"position": position}
        for k, v in step_columns(state).items():
            row[k] = _timestamp_text(v) if isinstance(v, dt.datetime) else v
        rows.append(row)
    return {"b_steps": json.dumps(rows, ensure_ascii=False)}


def event_rows(records: Iterable[EventRecord]) -> dict[str, str]:
    """The ``b_events`` parameter of :func:`write_change`: the events' columns but ``case_id``, as a JSON array of objects."""
    rows = []
    for r in records:
        columns = event_columns(r)
        del columns["case_id"]
        rows.append(columns)
    return {"b_events": json.dumps(rows, ensure_ascii=False)}
