"""Replaying a case's events through its procedure, to check the stored case.

The events are the evidence; the ``cases`` and ``case_steps`` rows are what
the engine made of them. :func:`replay` runs the events again through the
case's compiled procedure, as the engine ran them (the same actor, instant,
comment, missing papers and data), and compares, event by event, what the
engine would have recorded with what is stored, then the state it ends in
with the stored rows. A step whose status, actor or outcome was edited, case
data changed, a case moved to another unit or applicant: each differs.

Due times are left out of the comparison (a step's and the case's
``due_at``, and the clock details ``paused_hours`` and ``case_due_at`` of an
event): they depend on the working calendar, which an operator may change
between the action and the check (an extra day off), so they would differ
without anyone having touched the record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from procedures.errors import TinhgonError
from procedures.messages import t

from .audit import EventRecord, canonical, format_at
from .calendar import WorkingCalendar
from .machine import Actor, CaseState, CompiledProcedure, Entry

CALENDAR_DETAILS = frozenset({"paused_hours", "case_due_at"})
"""event details that depend on the working calendar, left out of the comparison"""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where the stored case departs from its replayed events: ``seq`` is
    the event (0 when it is the stored rows that differ)."""

    seq: int
    reason: str


def _details(details: Mapping[str, Any]) -> bytes:
    return canonical({k: v for k, v in details.items() if k not in CALENDAR_DETAILS})


def _differs(entry: Entry, record: EventRecord) -> str | None:
    expected = {
        "type": entry.type,
        "actor": entry.actor,
        "at": format_at(entry.at),
        "step": entry.step,
        "outcome": entry.outcome,
        "comment": entry.comment,
        "decision": entry.decision,
    }
    for name, value in expected.items():
        if getattr(record, name) != value:
            return t(
                "its {name} is «{stored}» where the procedure records «{expected}»",
                name=name,
                stored=getattr(record, name),
                expected=value,
            )
    if _details(entry.details) != _details(record.data):
        return t("its details differ from what the procedure records")
    return None


def _moment(record: EventRecord) -> dt.datetime:
    return dt.datetime.fromisoformat(record.at)


def _run(compiled: CompiledProcedure, records: Sequence[EventRecord], calendar: WorkingCalendar) -> tuple[CaseState, int]:
    """The state the events lead to, and how many changes they hold; raises Mismatch-worthy errors."""
    first = records[0]
    if first.type != "created":
        raise _Off(first.seq, t("the first event is «{type}», not «created»", type=first.type))
    details = first.data
    procedure = details.get("procedure") or {}
    defn = compiled.definition
    if procedure != {"code": defn.code, "version": defn.version}:
        raise _Off(
            first.seq,
            t(
                "it names procedure «{named}», not the case's {code} version {version}",
                named=procedure,
                code=defn.code,
                version=defn.version,
            ),
        )
    unit, applicant = details.get("unit"), details.get("applicant")
    if not isinstance(unit, str) or not isinstance(applicant, str):
        raise _Off(first.seq, t("it does not name the case's unit and applicant"))
    case, entries = compiled.start(
        data=details.get("data"),
        unit=unit,
        applicant=applicant,
        actor=Actor(first.actor, unit),
        now=_moment(first),
        calendar=calendar,
    )
    position = _compare(entries, records, 0)
    changes = 1
    while position < len(records):
        record = records[position]
        now = _moment(record)
        if record.type == "withdrawn":
            entries = compiled.withdraw(
                case, actor=Actor(record.actor, case.unit), now=now, calendar=calendar, comment=record.comment
            )
        elif record.type in ("data", "action"):
            amended = None
            action = record
            if record.type == "data":
                changed = record.data.get("changes")
                if not isinstance(changed, dict) or position + 1 >= len(records):
                    raise _Off(record.seq, t("a data event without its changes or its action"))
                amended = {k: v[1] if isinstance(v, list) and len(v) == 2 else v for k, v in changed.items()}
                action = records[position + 1]
            if action.step is None or action.outcome is None:
                raise _Off(action.seq, t("an action event without its step or outcome"))
            index = defn.index.get(action.step)
            roles = frozenset({defn.steps[index].role}) if index is not None else frozenset()
            missing = action.data.get("missing") or ()
            entries = compiled.act(
                case,
                step=action.step,
                outcome=action.outcome,
                actor=Actor(action.actor, case.unit, roles),
                now=_moment(action),
                calendar=calendar,
                comment=action.comment,
                missing=missing if isinstance(missing, list) else (),
                data=amended,
            )
        else:
            raise _Off(record.seq, t("a «{type}» event where only an action, data or withdrawal can come", type=record.type))
        position = _compare(entries, records, position)
        changes += 1
    return case, changes


class _Off(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.mismatch = Mismatch(seq, reason)


def _compare(entries: Sequence[Entry], records: Sequence[EventRecord], position: int) -> int:
    for offset, entry in enumerate(entries):
        if position + offset >= len(records):
            raise _Off(position + offset + 1, t("the procedure records a «{type}» event here, which is missing", type=entry.type))
        record = records[position + offset]
        problem = _differs(entry, record)
        if problem is not None:
            raise _Off(record.seq, problem)
    return position + len(entries)


def _guided(value: Mapping[str, Any] | None) -> bytes | None:
    """The guide-once record as compared: its instant as one instant, however
    the engine wrote it (the action's local time, or the event's UTC text)."""
    if value is None:
        return None
    record = dict(value)
    if isinstance(record.get("at"), str):
        record["at"] = format_at(dt.datetime.fromisoformat(record["at"]))
    return canonical(record)


def replay(
    compiled: CompiledProcedure,
    records: Sequence[EventRecord],
    case_row: Any,
    step_rows: Sequence[Any],
    calendar: WorkingCalendar | None = None,
) -> Mismatch | None:
    """The first place where the stored case departs from its events, or None.

    ``case_row`` is the ``cases`` row, ``step_rows`` its ``case_steps`` rows
    in position order.
    """
    if not records:
        return Mismatch(1, t("the case has no events"))
    try:
        case, changes = _run(compiled, records, calendar or WorkingCalendar())
    except _Off as off:
        return off.mismatch
    except TinhgonError as error:
        return Mismatch(0, t("the procedure refuses the recorded events ({error})", error=str(error)))
    defn = compiled.definition
    stored = {
        "status": case_row.status,
        "unit": case_row.unit,
        "applicant": case_row.applicant,
        "data": canonical(dict(case_row.data)),
        "created_at": case_row.created_at,
        "paused_since": case_row.paused_since,
        "guided": _guided(case_row.guided),
        "version": case_row.version,
        "procedure": (case_row.code, case_row.procedure_version),
    }
    replayed = {
        "status": case.status,
        "unit": case.unit,
        "applicant": case.applicant,
        "data": canonical(case.data),
        "created_at": case.created_at,
        "paused_since": case.paused_since,
        "guided": _guided(case.guided.as_dict() if case.guided else None),
        "version": changes,
        "procedure": (defn.code, defn.version),
    }
    for name, value in replayed.items():
        if stored[name] != value:
            return Mismatch(0, t("the case's {name} differs from what its events lead to", name=name))
    if len(step_rows) != len(defn.steps):
        return Mismatch(
            0,
            t("the case has {rows} step rows where its procedure has {steps} steps", rows=len(step_rows), steps=len(defn.steps)),
        )
    for i, (row, state, step) in enumerate(zip(step_rows, case.steps, defn.steps, strict=True)):
        copied = {
            "step_id": step.id,
            "position": i,
            "role": step.role,
            "role_kind": compiled.role_kind[i],
            "unit": case.unit,
            "applicant": case.applicant,
            "status": state.status,
            "activated_at": state.activated_at,
            "completed_at": state.completed_at,
            "outcome": state.outcome,
            "actor": state.actor,
        }
        for name, value in copied.items():
            if getattr(row, name) != value:
                return Mismatch(
                    0,
                    t(
                        "step {position} «{step}»: its {name} differs from what the events lead to",
                        position=i + 1,
                        step=step.name,
                        name=name,
                    ),
                )
    return None
