"""What callers of the case service get back: plain, frozen views of a
case, its steps, an inbox line, and a stored idempotent answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .db import CaseRow
from .errors import GuidedReturn
from .machine import OPEN, CaseState, CompiledProcedure, StepState
from .rows import state_of


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer first given to a request under an idempotency key."""

    status_code: int
    body: dict[str, Any]


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


class StepView(NamedTuple):
    """One step of a case view (a named tuple: a view is built on every
    action, ten or more of these at a time, and a frozen dataclass costs
    twice as much to make)."""

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
        return cls.of_state(row.id, row.code, row.procedure_version, row.version, state_of(row), machine, now=now)

    @classmethod
    def of_state(
        cls,
        case_id: int,
        code: str,
        procedure_version: int,
        version: int,
        state: CaseState,
        machine: CompiledProcedure,
        *,
        now: dt.datetime,
    ) -> CaseView:
        steps = machine.definition.steps
        return cls(
            id=case_id,
            code=code,
            procedure_version=procedure_version,
            unit=state.unit,
            applicant=state.applicant,
            status=state.status,
            created_at=state.created_at,
            due_at=state.due_at,
            data=dict(state.data),
            version=version,
            paused=state.paused_since is not None,
            guided=state.guided,
            steps=tuple(
                # positional: the fields of StepView in order
                StepView(
                    step.id,
                    step.name,
                    step.role,
                    s.status,
                    s.activated_at,
                    s.due_at,
                    s.completed_at,
                    s.outcome,
                    s.status == "active" and s.due_at is not None and s.due_at < now,
                )
                for step, s in zip(steps, state.steps, strict=True)
            ),
        )

    @property
    def open(self) -> bool:
        return self.status == OPEN

    def state(self) -> CaseState:
        """The case as the machine's plain state, e.g. to ask it what a user may do
        (:meth:`CompiledProcedure.actionable`); who took each step is not in a view."""
        return CaseState(
            id=self.id,
            status=self.status,
            unit=self.unit,
            applicant=self.applicant,
            data=dict(self.data),
            created_at=self.created_at,
            due_at=self.due_at,
            steps=[StepState(s.status, s.activated_at, s.due_at, s.completed_at, s.outcome) for s in self.steps],
            guided=self.guided,
        )
