"""Stateful tests of the case engine (hypothesis ``RuleBasedStateMachine``).

Random valid definitions (the strategy of ``tests/procedures/test_properties.py``,
with more field types and returns to applicant steps added on top) are run
as cases, by random actions legal and illegal: starting cases with good or
bad data, acting on any step with any outcome as the right or a wrong
actor, withdrawing, and moving the clock. After each action the invariants
of the format's section 6 and of service.md section 2 are checked.

Each action is judged against an oracle written here from the two specs,
not from the engine: it says which refusal (if any) the action deserves, in
the order the engine documents (existence, role, state, data). A refusal
must be one of the engine's errors and must leave the case exactly as it
was; an accepted action must have the effect its outcome names.

The same rules run twice: on :class:`~engine.machine.CompiledProcedure` with
a plain :class:`~engine.machine.CaseState` (fast), and through
:class:`~engine.cases.CaseService` on a SQLite file, where the audit chain
must verify after every action.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from engine import journal
from engine.cases import CaseService
from engine.db import CaseRow, EventRow, UserRow
from engine.errors import (
    CaseClosed,
    EngineError,
    Forbidden,
    GuideOnce,
    InvalidAction,
    InvalidData,
    NotFound,
    StaleCase,
    StepNotActive,
)
from engine.keys import Signer
from engine.machine import (
    ACTIVE,
    CANCELLED,
    CASE_COMPLETED,
    CASE_STATUSES,
    COMPLETED,
    FINISHED,
    OPEN,
    REJECTED,
    SKIPPED,
    STEP_STATUSES,
    SYSTEM_ACTOR,
    WAITING,
    WITHDRAWN,
    Actor,
    CaseState,
    CompiledProcedure,
)
from engine.publishing import publish_definition
from engine.rows import state_of
from engine.schema import upgrade
from engine.store import AsyncStatements, Store
from engine.users import add_user, issue_token
from engine.views import CaseView
from procedures import build, load_text
from procedures.model import Definition, Effect, FieldDef
from procedures.serialize import to_data
from procedures.writer import dump
from tests.conftest import _reset_postgres, definition_text
from tests.engine.conftest import CALENDAR, Clock, local
from tests.procedures.test_properties import definitions
from tests.transacting import Transacting, change_signed_in_async

SIGNER = Signer.generate()
REFUSALS: tuple[type[EngineError], ...] = (InvalidAction, Forbidden, CaseClosed, StepNotActive, GuideOnce, InvalidData, StaleCase)
UNITS = ("u1", "u2")
MAX_CASES = 4
START = local(2027, 3, 1, 8, 0)  # a Monday
NO_STEP, NO_OUTCOME, NO_DOCUMENT = "khong_co_buoc", "khong co ket qua", "khong_co_giay"
RETURN_TO_APPLICANT = "bo_sung"
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
"""text a field takes (a NUL character is refused: see invalid_data)"""


# -- definitions: the simplifier's strategy, plus what the engine needs ------------
EXTRA_FIELDS: tuple[dict[str, Any], ...] = (
    {"id": "ho_ten", "type": "string"},
    {"id": "thu_nhap", "type": "number"},
    {"id": "ngay_sinh", "type": "date"},
)
EXTRA_CONDITIONS: dict[str, dict[str, Any]] = {
    "ho_ten": {"field": "ho_ten", "exists": True},
    "thu_nhap": {"field": "thu_nhap", "gt": 1.5},
    "ngay_sinh": {"field": "ngay_sinh", "exists": False},
}


@st.composite
def engine_definitions(draw: st.DrawFn) -> Definition:
    """A valid definition from :func:`definitions`, with fields of the types
    it lacks (string, number, date, some required, some in ``when``), and,
    when there is an applicant, the applicant's steps more often first and
    returned to more often (so that guide once and the stopped clock come up).
    """
    data = draw(definitions())
    steps: list[dict[str, Any]] = data["steps"]
    extra = draw(st.lists(st.sampled_from(EXTRA_FIELDS), unique_by=lambda f: str(f["id"]), max_size=3))
    if extra:
        data["fields"] = [*data.get("fields", []), *({**f, "required": draw(st.booleans())} for f in extra)]
        for f in extra:
            if draw(st.booleans()):
                step = draw(st.sampled_from(steps))
                step.setdefault("when", EXTRA_CONDITIONS[f["id"]])
    applicant = next((r["id"] for r in data["roles"] if r["kind"] == "applicant"), None)
    if applicant is None and draw(st.booleans()):
        applicant = "nguoi_nop"
        data["roles"] = [{"id": applicant, "name": "Người nộp hồ sơ", "kind": "applicant"}, *data["roles"]]
    if applicant is not None and draw(st.booleans()):
        steps[0]["role"] = applicant
    defn = build(data)
    if applicant is None:
        return defn
    # returns to applicant steps, from up to two of their descendants
    pairs = [
        (s.id, a.id)
        for s in defn.steps
        for a in defn.steps
        if a.role == applicant and s.role != applicant and defn.is_ancestor(a.id, s.id) and s.outcome(RETURN_TO_APPLICANT) is None
    ]
    if not pairs:
        return defn
    chosen = draw(st.lists(st.sampled_from(pairs), unique_by=lambda p: p[0], max_size=2))
    by_id = {s["id"]: s for s in steps}
    for step_id, target in chosen:
        step = by_id[step_id]
        step["outcomes"] = {**step.get("outcomes", {"done": "proceed"}), RETURN_TO_APPLICANT: {"return": target}}
    return build(data)


# -- case data -----------------------------------------------------------------------
def _value(f: FieldDef) -> st.SearchStrategy[Any]:
    if f.type == "string":
        return TEXT
    if f.type == "integer":
        return st.integers(-5, 20)
    if f.type == "number":
        return st.integers(-5, 20) | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    if f.type == "boolean":
        return st.booleans()
    if f.type == "date":
        return st.dates(dt.date(1950, 1, 1), dt.date(2030, 12, 31)).map(dt.date.isoformat)
    assert f.type == "enum" and f.values, f
    return st.sampled_from(f.values)


WRONG: dict[str, tuple[Any, ...]] = {
    "string": (1, True, ["a"]),
    "integer": ("3", 1.5, True),
    "number": ("x", True, float("nan")),
    "boolean": (1, "true", 0),
    "date": ("2027-13-01", "01/02/2027", 20270101),
    "enum": ("zz", 1, ""),
}


def valid_data(defn: Definition) -> st.SearchStrategy[dict[str, Any]]:
    """Data that satisfies the fields; an optional field may be None (absent)."""
    required = {f.id: _value(f) for f in defn.fields if f.required}
    optional = {f.id: st.none() | _value(f) for f in defn.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


def valid_changes(defn: Definition) -> st.SearchStrategy[dict[str, Any]]:
    """An amendment that keeps the data valid (None clears an optional field)."""
    return st.fixed_dictionaries({}, optional={f.id: (_value(f) if f.required else st.none() | _value(f)) for f in defn.fields})


@st.composite
def invalid_data(draw: st.DrawFn, defn: Definition, base: dict[str, Any], *, amendment: bool = False) -> Any:
    """``base`` (valid) broken in one way the fields forbid. For an
    ``amendment`` a required field goes missing only by being cleared (None):
    a field an amendment leaves out keeps its value."""
    ways = ["unknown", "not a mapping"]
    if defn.fields:
        ways.append("wrong type")
    if any(f.type == "string" for f in defn.fields):
        ways.append("NUL")
    if any(f.required for f in defn.fields):
        ways.append("missing")
    way = draw(st.sampled_from(ways))
    if way == "unknown":
        return {**base, "khong_khai_bao": draw(TEXT)}
    if way == "not a mapping":
        return draw(st.sampled_from([[], "x", 3, None]))
    if way == "wrong type":
        f = draw(st.sampled_from(defn.fields))
        return {**base, f.id: draw(st.sampled_from(WRONG[f.type]))}
    if way == "NUL":  # which PostgreSQL cannot store: refused on every database
        f = draw(st.sampled_from([f for f in defn.fields if f.type == "string"]))
        return {**base, f.id: draw(TEXT) + "\x00" + draw(TEXT)}
    f = draw(st.sampled_from([f for f in defn.fields if f.required]))
    return {**base, f.id: None} if amendment or draw(st.booleans()) else {k: v for k, v in base.items() if k != f.id}


# -- two ways to run the same cases --------------------------------------------------
class Driver:
    """What the rules need of the engine; cases are named by a handle."""

    def start(self, actor: Actor, unit: str, applicant: str, data: Any) -> int:
        raise NotImplementedError

    def act(self, handle: int, actor: Actor, *, step: str, outcome: str, missing: list[str], data: Any) -> None:
        raise NotImplementedError

    def withdraw(self, handle: int, actor: Actor) -> None:
        raise NotImplementedError

    def state(self, handle: int) -> CaseState:
        raise NotImplementedError

    def snapshot(self, handle: int | None) -> object:
        """Everything an action could change, deep-copied and comparable."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryDriver(Driver):
    def __init__(self, defn: Definition, clock: Clock) -> None:
        self.machine = CompiledProcedure(defn)
        self.clock = clock
        self.cases: list[CaseState] = []
        self.events: list[int] = []

    def start(self, actor: Actor, unit: str, applicant: str, data: Any) -> int:
        case, entries = self.machine.start(
            data=data, unit=unit, applicant=applicant, actor=actor, now=self.clock(), calendar=CALENDAR
        )
        assert entries and entries[0].type == "created"
        self.cases.append(case)
        self.events.append(len(entries))
        return len(self.cases) - 1

    def act(self, handle: int, actor: Actor, *, step: str, outcome: str, missing: list[str], data: Any) -> None:
        entries = self.machine.act(
            self.cases[handle],
            step=step,
            outcome=outcome,
            actor=actor,
            now=self.clock(),
            calendar=CALENDAR,
            missing=missing,
            data=data,
        )
        assert entries, "an accepted action left no audit entry"
        self.events[handle] += len(entries)

    def withdraw(self, handle: int, actor: Actor) -> None:
        entries = self.machine.withdraw(self.cases[handle], actor=actor, now=self.clock(), calendar=CALENDAR)
        assert [e.type for e in entries] == ["withdrawn"]
        self.events[handle] += len(entries)

    def state(self, handle: int) -> CaseState:
        return self.cases[handle]

    def snapshot(self, handle: int | None) -> object:
        case = None if handle is None else copy.deepcopy(self.cases[handle])
        return case, len(self.cases), sum(self.events)


class PersistedDriver(Driver):
    """Through CaseService on a SQLite file of its own (hypothesis examples
    cannot use pytest's function-scoped fixtures, so it makes its own), or
    on the PostgreSQL database at ``postgres``, emptied first."""

    def __init__(self, defn: Definition, clock: Clock, postgres: str | None = None) -> None:
        self.folder = None if postgres else Path(tempfile.mkdtemp(prefix="tinhgon-stateful-"))
        if postgres:
            _reset_postgres(postgres)
        self.store = Store(postgres or f"sqlite:///{self.folder / 'cases.db'}")
        self.store.signer = SIGNER  # the journal's entries are signed like the events
        upgrade(self.store.engine)
        publish_definition(self.store, dump(to_data(defn)), now=clock())
        self.code = defn.code
        self.service = Transacting(self.store, signer=SIGNER, calendar=CALENDAR, clock=clock)
        self.changes = 0
        self.tokens: dict[str, str] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.statements: AsyncStatements | None = None

    def start(self, actor: Actor, unit: str, applicant: str, data: Any) -> int:
        with self.store.unit() as uow:  # an applicant must be a user (the rules' applicants all are)
            if uow.session.get(UserRow, applicant) is None:
                add_user(uow, applicant, name=applicant, unit=unit)
                self.tokens[applicant] = issue_token(uow, applicant)
        view = self.service.start(actor, code=self.code, unit=unit, data=data, applicant=applicant)
        assert view.version == 1
        return view.id

    def act(self, handle: int, actor: Actor, *, step: str, outcome: str, missing: list[str], data: Any) -> None:
        if self._signed_in_turn():  # PostgreSQL's plain API action: token, read and write in two statements

            def change(signed_in: Actor) -> Any:
                return self.service.acting(signed_in, step=step, outcome=outcome, missing=missing, data=data)

            assert self._signed_in(self._token(actor), handle, change) is not None
            return
        self.service.act(actor, handle, step=step, outcome=outcome, missing=missing, data=data)

    def withdraw(self, handle: int, actor: Actor) -> None:
        if self._signed_in_turn():
            change = lambda signed_in: self.service.withdrawing(signed_in)  # noqa: E731
            assert self._signed_in(self._token(actor), handle, change) is not None
            return
        self.service.withdraw(actor, handle)

    def _signed_in_turn(self) -> bool:
        """On PostgreSQL two changes in three go the signed-in way."""
        self.changes += 1
        return self.store.dialect == "postgresql" and self.changes % 3 != 0

    def _signed_in(self, token: str, handle: int, change: Any) -> Any:
        """The signed-in change, taking turns: in this thread
        (CaseService.change_signed_in), or as a worker runs it, on an event
        loop, its statements sent through libpq (change_signed_in_async)."""
        if self.changes % 3 == 1:
            return self.service.change_signed_in(token, handle, change)
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.statements = AsyncStatements(self.store, 2)
            self.loop.run_until_complete(self.statements.open())
        assert self.statements is not None
        return self.loop.run_until_complete(change_signed_in_async(self.service, self.statements, token, handle, change))

    def _token(self, actor: Actor) -> str:
        """A bearer token of a user who is ``actor`` now (the rules give one
        id several units or roles, so the user's row is set each time)."""
        with self.store.unit() as uow:
            row = uow.session.get(UserRow, actor.id)
            if row is None:
                add_user(uow, actor.id, name=actor.id, unit=actor.unit)
                self.tokens[actor.id] = issue_token(uow, actor.id)
                row = uow.session.get(UserRow, actor.id)
                assert row is not None
            row.unit, row.roles, row.permissions = actor.unit, sorted(actor.roles), sorted(actor.permissions)
            uow.flush()
            uow.journal(journal.USER, actor.id, journal.user_state(row), actor="test")  # as an admin's change is recorded
        return self.tokens[actor.id]

    def state(self, handle: int) -> CaseState:
        with self.store.unit(write=False) as uow:
            return state_of(uow.case(handle))

    def row_counts(self, handle: int) -> tuple[int, int, int]:
        """The case row's version and event count, and its stored events."""
        with self.store.unit(write=False) as uow:
            row = uow.case(handle)
            stored = uow.session.scalar(select(func.count()).select_from(EventRow).where(EventRow.case_id == handle))
            return row.version, row.event_count, int(stored or 0)

    def snapshot(self, handle: int | None) -> object:
        with self.store.unit(write=False) as uow:
            cases = uow.session.scalar(select(func.count()).select_from(CaseRow))
            events = uow.session.scalar(select(func.count()).select_from(EventRow))
            if handle is None:
                return cases, events
            row = uow.case(handle)
            return state_of(row), row.version, row.event_count, row.head_hash, cases, events

    def close(self) -> None:
        if self.loop is not None:
            assert self.statements is not None
            self.loop.run_until_complete(self.statements.close())
            self.loop.close()
        self.store.dispose()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


# -- the oracle ------------------------------------------------------------------------
@dataclass
class Known:
    """What the test itself remembers of a case."""

    handle: int
    unit: str
    applicant: str
    accepted: int = 0
    """accepted changes after creation"""
    guided: list[str] = field(default_factory=list)
    """the accepted returns to an applicant step (guide once: at most one)"""


class CaseRules(RuleBasedStateMachine):
    """Random cases of one random definition, on the plain machine."""

    persisted = False
    on_postgres = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(START)
        self.driver: Driver | None = None
        self.cases: list[Known] = []

    def teardown(self) -> None:
        if self.driver is not None:
            self.driver.close()

    @initialize(defn=engine_definitions(), data=st.data())
    def load(self, defn: Definition, data: st.DataObject) -> None:
        self.defn = defn
        self.machine = CompiledProcedure(defn)
        self.office_roles = sorted(r.id for r in defn.roles if r.kind == "office")
        if self.persisted:
            self.driver = PersistedDriver(defn, self.clock, _POSTGRES[0] if self.on_postgres else None)
        else:
            self.driver = MemoryDriver(defn, self.clock)
        # one case to begin with, so that every rule has something to act on
        self.start_case(data, good=True)

    @property
    def run(self) -> Driver:
        assert self.driver is not None
        return self.driver

    # -- who is who ------------------------------------------------------------
    def kind_of(self, i: int) -> str:
        return self.defn.role_kind(self.defn.steps[i])

    def holds(self, case: Known, actor: Actor, i: int) -> bool:
        """service.md section 2, read afresh: who may act on step ``i``."""
        kind = self.kind_of(i)
        if kind == "applicant":
            return actor.id == case.applicant
        return kind == "office" and actor.unit == case.unit and self.defn.steps[i].role in actor.roles

    def sees(self, case: Known, actor: Actor) -> bool:
        """Who sees a case through the service (others get NotFound)."""
        if not self.persisted:
            return True
        return (
            "admin" in actor.permissions
            or actor.id == case.applicant
            or (actor.unit == case.unit and bool(actor.roles & set(self.office_roles)))
        )

    def actors(self, case: Known, role: str) -> list[Actor]:
        other_unit = next(u for u in UNITS if u != case.unit)
        others = frozenset(self.office_roles) - {role}
        return [
            Actor(case.applicant, case.unit),
            Actor("dan_khac", case.unit),
            Actor(f"cb_{role}", case.unit, frozenset({role})),
            Actor(f"cb_{role}", other_unit, frozenset({role})),
            Actor("cb_khac", case.unit, others or frozenset({"vai_tro_khac"})),
            Actor("quan_tri", case.unit, permissions=frozenset({"admin"})),
            Actor(SYSTEM_ACTOR, case.unit),
        ]

    def right_actor(self, case: Known, i: int) -> Actor:
        if self.kind_of(i) == "applicant":
            return Actor(case.applicant, case.unit)
        role = self.defn.steps[i].role
        return Actor(f"cb_{role}", case.unit, frozenset({role}))

    def effect_of(self, i: int, outcome: str | None) -> str | None:
        effect = self.defn.steps[i].outcome(outcome) if outcome is not None else None
        return effect.kind if effect is not None else None

    def to_applicant(self, effect: Effect | None) -> bool:
        return (
            effect is not None
            and effect.kind == "return"
            and effect.target is not None
            and self.kind_of(self.defn.index[effect.target]) == "applicant"
        )

    # -- judging one call -------------------------------------------------------------
    def attempt(self, handle: int | None, expected: type[EngineError] | None, call: Callable[[], object]) -> bool:
        """Run ``call``; refused exactly when the oracle says so, with its error,
        and a refusal leaves everything as it was. True when accepted."""
        before = self.run.snapshot(handle)
        try:
            call()
        except EngineError as exc:
            allowed = (*REFUSALS, NotFound) if self.persisted else REFUSALS
            assert isinstance(exc, allowed), f"refused with {type(exc).__name__}, which no action should raise: {exc}"
            assert expected is not None, f"a legal action was refused with {type(exc).__name__}: {exc}"
            assert type(exc) is expected, f"refused with {type(exc).__name__} ({exc}); expected {expected.__name__}"
            assert self.run.snapshot(handle) == before, f"a refused action ({type(exc).__name__}) changed the case"
            event(f"refused: {type(exc).__name__}")
            return False
        assert expected is None, f"accepted an action that deserves {expected.__name__}"
        return True

    def expected_act(
        self, case: Known, state: CaseState, actor: Actor, step: str, outcome: str, missing: list[str], data: Any, data_ok: bool
    ) -> type[EngineError] | None:
        if not self.sees(case, actor):
            return NotFound
        i = self.defn.index.get(step)
        if i is None:
            return InvalidAction
        effect = self.defn.steps[i].outcome(outcome)
        if effect is None or any(d not in self.defn.document_by_id for d in missing):
            return InvalidAction
        if data is not None and self.kind_of(i) != "applicant":
            return InvalidAction
        if not self.holds(case, actor, i):
            return Forbidden
        if state.status != OPEN:
            return CaseClosed
        if state.steps[i].status != ACTIVE:
            return StepNotActive
        if self.to_applicant(effect) and case.guided:
            return GuideOnce
        if data is not None and not data_ok:
            return InvalidData
        return None

    def act(
        self, case: Known, actor: Actor, step: str, outcome: str, missing: list[str], data: Any, data_ok: bool = True
    ) -> None:
        before = self.run.state(case.handle)
        expected = self.expected_act(case, before, actor, step, outcome, missing, data, data_ok)
        before = copy.deepcopy(before)
        call = lambda: self.run.act(case.handle, actor, step=step, outcome=outcome, missing=missing, data=data)  # noqa: E731
        if self.attempt(case.handle, expected, call):
            case.accepted += 1
            self.check_effect(case, before, actor, step, outcome, data)

    def check_effect(self, case: Known, before: CaseState, actor: Actor, step: str, outcome: str, data: Any) -> None:
        """What the outcome says happened, happened."""
        after = self.run.state(case.handle)
        i = self.defn.index[step]
        effect = self.defn.steps[i].outcome(outcome)
        assert effect is not None
        if data is not None:
            assert after.data == {k: v for k, v in {**before.data, **data}.items() if v is not None}
        else:
            assert after.data == before.data
        event(f"accepted: {effect.kind}, case {after.status}")
        if effect.kind == "reject":
            assert after.status == REJECTED
            assert (after.steps[i].status, after.steps[i].outcome, after.steps[i].actor) == (COMPLETED, outcome, actor.id)
            assert after.paused_since is None
        elif effect.kind == "proceed":
            assert after.status in (OPEN, CASE_COMPLETED)
            assert (after.steps[i].status, after.steps[i].outcome, after.steps[i].actor) == (COMPLETED, outcome, actor.id)
            resumes = before.paused_since is not None and before.guided is not None and before.guided.target == step
            if resumes:
                self.check_resumed(before, after, "the case's clock did not resume")
                event("clock resumed")
            else:
                assert after.paused_since == before.paused_since and after.due_at == before.due_at
        else:
            assert effect.target is not None
            target = self.defn.index[effect.target]
            assert after.status == OPEN
            assert after.steps[target].status in (ACTIVE, SKIPPED, COMPLETED), "a return did not restart its target"
            if after.steps[target].status == COMPLETED:  # only a system step finishes by itself
                assert self.kind_of(target) == "system"
            if self.to_applicant(effect) and after.steps[target].status == ACTIVE:
                case.guided.append(f"{step}.{outcome}")
                event("returned to the applicant")
                assert after.guided is not None and after.guided.target == effect.target
                assert after.paused_since == self.clock() and after.due_at == before.due_at
            else:
                assert after.guided == before.guided
                # the clock stands still only while the applicant's step waits on them
                left = (
                    before.paused_since is not None
                    and before.guided is not None
                    and after.steps[self.defn.index[before.guided.target]].status != ACTIVE
                )
                if left:
                    self.check_resumed(before, after, "a return left the clock stopped")
                    event("clock resumed by a return")
                else:
                    assert after.paused_since == before.paused_since and after.due_at == before.due_at

    def check_resumed(self, before: CaseState, after: CaseState, message: str) -> None:
        """The clock stopped at ``before`` runs again: the due time moved by the working time it stood still."""
        assert before.paused_since is not None
        paused = CALENDAR.working_hours_between(before.paused_since, self.clock())
        due = before.due_at
        expected_due = CALENDAR.add(due, paused) if due is not None and paused > 0 else due
        assert after.paused_since is None and after.due_at == expected_due, message

    # -- rules ----------------------------------------------------------------------------
    @precondition(lambda self: len(self.cases) < MAX_CASES)
    @rule(data=st.data())
    def start_case(self, data: st.DataObject, good: bool | None = None) -> None:
        unit = data.draw(st.sampled_from(UNITS), label="unit")
        applicant = f"dan_{len(self.cases)}"
        # the applicant starts it, or an official on the applicant's behalf
        actor = data.draw(st.sampled_from([Actor(applicant, unit), Actor("cb_tiep_nhan", unit, frozenset(self.office_roles))]))
        values = data.draw(valid_data(self.defn), label="data")
        if good is None:
            good = data.draw(st.integers(0, 4), label="good") > 0
        if not good:
            values = data.draw(invalid_data(self.defn, values), label="bad data")
        box: list[int] = []
        accepted = self.attempt(
            None, None if good else InvalidData, lambda: box.append(self.run.start(actor, unit, applicant, values))
        )
        if not accepted:
            return
        known = Known(box[0], unit, applicant)
        self.cases.append(known)
        state = self.run.state(known.handle)
        assert state.applicant == applicant and state.unit == unit and state.created_at == self.clock()
        assert state.status in (OPEN, CASE_COMPLETED), "a new case is open, or completed when nothing was left to do"
        assert state.guided is None and state.paused_since is None
        limit = self.defn.time_limit
        assert state.due_at == (CALENDAR.add(self.clock(), limit) if limit else None)

    def open_with_active(self) -> list[tuple[Known, int]]:
        out = []
        for case in self.cases:
            state = self.run.state(case.handle)
            if state.status == OPEN:
                out += [(case, i) for i, s in enumerate(state.steps) if s.status == ACTIVE]
        return out

    @rule(data=st.data())
    def act_as_allowed(self, data: st.DataObject) -> None:
        """Actors who hold the steps' roles take outcomes, a few in a row
        (proceed more often than the others, so that cases get somewhere)."""
        for _ in range(data.draw(st.integers(1, 4), label="how many")):
            choices = self.open_with_active()
            if not choices:
                return
            case, i = data.draw(st.sampled_from(choices), label="case and step")
            step = self.defn.steps[i]
            kind = data.draw(st.sampled_from(["proceed", "proceed", "return", "any"]), label="kind")
            names = [n for n, e in step.outcomes if kind in (e.kind, "any")] or [n for n, _ in step.outcomes]
            outcome = data.draw(st.sampled_from(names), label="outcome")
            changes = None
            if self.kind_of(i) == "applicant" and data.draw(st.booleans(), label="amend"):
                changes = data.draw(valid_changes(self.defn), label="changes")
            documents = [d.id for d in self.defn.documents]
            missing = (
                data.draw(st.lists(st.sampled_from(documents), max_size=2, unique=True), label="missing") if documents else []
            )
            self.act(case, self.right_actor(case, i), step.id, outcome, missing, changes)

    @rule(data=st.data())
    def act_anyhow(self, data: st.DataObject) -> None:
        """Any actor, any step (or none), any outcome (or none), any data."""
        case = data.draw(st.sampled_from(self.cases), label="case")
        step_ids = [s.id for s in self.defn.steps]
        step = data.draw(st.sampled_from([*step_ids, NO_STEP]), label="step")
        i = self.defn.index.get(step)
        names = [n for n, _ in self.defn.steps[i].outcomes] if i is not None else ["done"]
        outcome = data.draw(st.sampled_from([*names, NO_OUTCOME]), label="outcome")
        role = self.defn.steps[i].role if i is not None else self.office_roles[0]
        actor = data.draw(st.sampled_from(self.actors(case, role)), label="actor")
        missing = data.draw(
            st.lists(st.sampled_from([*(d.id for d in self.defn.documents), NO_DOCUMENT]), max_size=2, unique=True)
        )
        how = data.draw(st.sampled_from(["none", "valid", "invalid"]), label="data kind")
        changes: Any = None
        if how == "valid":
            changes = data.draw(valid_changes(self.defn), label="changes")
        elif how == "invalid":
            changes = data.draw(
                invalid_data(self.defn, dict(self.run.state(case.handle).data), amendment=True), label="bad changes"
            )
        self.act(case, actor, step, outcome, missing, changes, data_ok=how != "invalid")

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        case = data.draw(st.sampled_from(self.cases), label="case")
        actor = data.draw(st.sampled_from(self.actors(case, self.office_roles[0])), label="actor")
        state = self.run.state(case.handle)
        expected: type[EngineError] | None
        if not self.sees(case, actor):
            expected = NotFound
        elif actor.id != case.applicant:
            expected = Forbidden
        elif state.status != OPEN:
            expected = CaseClosed
        else:
            expected = None
        if self.attempt(case.handle, expected, lambda: self.run.withdraw(case.handle, actor)):
            case.accepted += 1
            after = self.run.state(case.handle)
            assert after.status == WITHDRAWN and after.paused_since is None
            assert [s.status for s in after.steps] == [
                CANCELLED if s.status in (WAITING, ACTIVE) else s.status for s in state.steps
            ]

    @rule(
        delta=st.sampled_from(
            [
                {"minutes": 1},
                {"minutes": 30},
                {"hours": 2},
                {"hours": 9},
                {"days": 1},
                {"days": 3},
                {"days": 12},
                {"hours": 1, "minutes": 7},
            ]
        )
    )
    def advance_clock(self, delta: dict[str, float]) -> None:
        self.clock.advance(**delta)

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def cases_hold_together(self) -> None:
        for case in self.cases:
            self.check_case(case, self.run.state(case.handle))

    def check_case(self, case: Known, state: CaseState) -> None:
        steps = self.defn.steps
        statuses = [s.status for s in state.steps]
        assert state.status in CASE_STATUSES and set(statuses) <= set(STEP_STATUSES)
        for i, s in enumerate(state.steps):
            if s.status == ACTIVE:
                late = [steps[p].id for p in self.defn.predecessors[i] if state.steps[p].status not in FINISHED]
                assert not late, f"{steps[i].id} is active before {late} finished"
                assert self.kind_of(i) != "system", f"system step {steps[i].id} waits for someone"
            if s.status in (WAITING, SKIPPED):
                assert (s.activated_at, s.due_at, s.completed_at, s.outcome) == (None, None, None, None), (steps[i].id, s)
            if s.status == COMPLETED:
                assert s.outcome is not None and steps[i].outcome(s.outcome) is not None and s.completed_at is not None
            # due times: duration after activation, in working time; none for 0
            if steps[i].duration == 0:
                assert s.due_at is None, f"{steps[i].id} has duration 0 but is due {s.due_at}"
            elif s.activated_at is not None:
                assert s.due_at == CALENDAR.add(s.activated_at, steps[i].duration), steps[i].id
        if state.status == CASE_COMPLETED:
            assert set(statuses) <= FINISHED, f"a completed case with steps {statuses}"
        elif state.status in (REJECTED, WITHDRAWN):
            assert not {ACTIVE, WAITING} & set(statuses), f"a {state.status} case with steps {statuses}"
        else:
            # Always true: of the unfinished steps, the first in topological
            # order has only finished predecessors, so it was activated (or
            # skipped, or completed by the system), and a case whose steps are
            # all finished is completed, at creation too.
            assert ACTIVE in statuses, f"an open case with no active step: {statuses}"
        if state.status != REJECTED:
            rejected = [
                steps[i].id
                for i, s in enumerate(state.steps)
                if s.status == COMPLETED and self.effect_of(i, s.outcome) == "reject"
            ]
            assert not rejected, f"a {state.status} case whose steps {rejected} rejected it"
        # guide once, and the clock that stops while the applicant answers
        assert len(case.guided) <= 1, f"two returns to the applicant were accepted: {case.guided}"
        assert (state.guided is not None) == bool(case.guided)
        if state.paused_since is not None:
            assert state.status == OPEN, f"a {state.status} case whose clock is still stopped"
            assert state.guided is not None
            target = state.steps[self.defn.index[state.guided.target]]
            assert target.status == ACTIVE, (
                f"the clock is stopped for {state.guided.target}, which is {target.status}: nothing will restart it"
            )
        assert (state.due_at is None) == (not self.defn.time_limit)

    @invariant()
    def persisted_rows_agree(self) -> None:
        if not isinstance(self.driver, PersistedDriver):
            return
        for case in self.cases:
            version, count, stored = self.driver.row_counts(case.handle)
            assert version == 1 + case.accepted, "the case's version is not one more per accepted change"
            assert count == stored, "the case row's event count and its stored events differ"
        report = self.driver.service.verify_audit()
        assert report.ok, report.first_bad


class PersistedCaseRules(CaseRules):
    """The same, through CaseService on SQLite, audit chain included."""

    persisted = True


class PostgresCaseRules(PersistedCaseRules):
    """The same on PostgreSQL, where a change is one read and one write;
    two in three go as the API's plain actions go (signed in with a token,
    in two autocommit statements: CaseService.change_signed_in, and in turn
    change_signed_in_async, on an event loop with its statements sent
    through libpq)."""

    on_postgres = True


_POSTGRES: list[str] = []
"""The test run's PostgreSQL database, while the PostgreSQL rules run"""


@pytest.fixture
def stateful_postgres(postgres_server: str) -> Iterator[None]:
    _POSTGRES[:] = [postgres_server]
    yield
    _POSTGRES.clear()


# Shrinking a failure of a whole machine run can take hypothesis minutes; as
# in tests/procedures/test_properties.py, TINHGON_SHRINK=1 turns it on.
SETTINGS = settings(
    max_examples=80,
    phases=tuple(Phase) if os.environ.get("TINHGON_SHRINK") == "1" else tuple(p for p in Phase if p is not Phase.shrink),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TestCaseRules = CaseRules.TestCase
TestCaseRules.settings = SETTINGS
TestPersistedCaseRules = PersistedCaseRules.TestCase
TestPersistedCaseRules.settings = settings(SETTINGS, max_examples=12, stateful_step_count=25)
TestPostgresCaseRules = pytest.mark.usefixtures("stateful_postgres")(PostgresCaseRules.TestCase)
TestPostgresCaseRules.settings = settings(SETTINGS, max_examples=12, stateful_step_count=25)


# -- examples the machine ran into -----------------------------------------------------
GUIDED = definition_text("""\
    time_limit: 5d
    roles:
      - {id: dan, name: Người nộp, kind: applicant}
      - {id: mot_cua, name: Bộ phận một cửa, kind: office}
    documents:
      - {id: don, name: Đơn đề nghị, from: applicant}
      - {id: giay_ra_quan, name: Giấy ra quân, from: applicant}
    steps:
      - {id: nop, name: Nộp hồ sơ, role: dan, kind: submit, inputs: [don, giay_ra_quan]}
      - id: tham_dinh
        name: Thẩm định
        role: mot_cua
        kind: review
        duration: 1d
        outcomes: {dat: proceed, thieu: {return: nop}, lai_thieu: {return: nop}}
    """)


def _view(answer: object) -> CaseView:
    """A change without an idempotency key answers with the case itself."""
    assert isinstance(answer, CaseView), answer
    return answer


def test_guide_once_and_the_stopped_clock_through_the_service(service: CaseService, clock: Clock) -> None:
    """One return to the applicant stops the case's clock until the applicant
    answers; a second is refused and leaves the case and its audit chain as
    they were."""
    publish_definition(service.store, GUIDED, now=clock())
    dan, cb = Actor("dan", "u1"), Actor("cb", "u1", frozenset({"mot_cua"}))
    case = service.start(dan, code="T-1", unit="u1", data={})
    assert case.due_at == local(2027, 3, 5, 17, 0)  # 5 working days from Monday 08:00
    service.act(dan, case.id, step="nop", outcome="done")
    clock.advance(hours=2)
    returned = _view(service.act(cb, case.id, step="tham_dinh", outcome="thieu", missing=["giay_ra_quan"]))
    assert returned.paused and [s.status for s in returned.steps] == [ACTIVE, WAITING]
    clock.advance(days=1)  # the applicant takes one working day (Monday 10:00 to Tuesday 10:00)
    answered = _view(service.act(dan, case.id, step="nop", outcome="done"))
    assert not answered.paused
    assert answered.due_at == local(2027, 3, 8, 17, 0)  # moved later by those 8 working hours
    assert answered.steps[1].due_at == local(2027, 3, 3, 10, 0)

    with pytest.raises(GuideOnce) as refused:
        service.act(cb, case.id, step="tham_dinh", outcome="lai_thieu", missing=["don"])
    assert (refused.value.earlier.step, refused.value.earlier.outcome, refused.value.earlier.missing) == (
        "tham_dinh",
        "thieu",
        ("giay_ra_quan",),
    )
    assert service.get(cb, case.id) == answered
    done = _view(service.act(cb, case.id, step="tham_dinh", outcome="dat"))
    assert done.status == CASE_COMPLETED and done.version == 5
    assert [e.type for e in service.events(cb, case.id)] == ["created", "action", "action", "action", "action"]
    assert service.verify_audit().ok


def test_a_case_with_nothing_left_to_do_completes_when_created() -> None:
    """ "An open case has an active step" holds because a case whose steps all
    finish at creation (system steps, skipped steps) is completed at once."""
    defn = build(
        {
            "format": "tinhgon/1",
            "code": "T-2",
            "name": "Ghi sổ",
            "version": 1,
            "fields": [{"id": "can_bo_sung", "type": "boolean"}],
            "roles": [{"id": "he_thong", "name": "Hệ thống", "kind": "system"}, {"id": "cb", "name": "Cán bộ", "kind": "office"}],
            "documents": [],
            "steps": [
                {"id": "ghi_so", "name": "Ghi sổ", "role": "he_thong", "duration": "1h"},
                {"id": "bo_sung", "name": "Bổ sung", "role": "cb", "when": {"field": "can_bo_sung", "equals": True}},
            ],
        }
    )
    machine = CompiledProcedure(defn)
    case, entries = machine.start(data={}, unit="u1", applicant="dan", actor=Actor("dan", "u1"), now=START, calendar=CALENDAR)
    assert case.status == CASE_COMPLETED
    assert [(s.status, s.actor) for s in case.steps] == [(COMPLETED, SYSTEM_ACTOR), (SKIPPED, None)]
    assert case.steps[0].due_at == local(2027, 3, 1, 9, 0)  # a system step still carries its due time
    assert [e.type for e in entries] == ["created", "system"]
    with pytest.raises(CaseClosed):
        machine.withdraw(case, actor=Actor("dan", "u1"), now=START, calendar=CALENDAR)


SKIPPED_TARGET = definition_text("""\
    time_limit: 5d
    fields:
      - {id: thieu_giay, type: boolean}
    roles:
      - {id: dan, name: Người nộp, kind: applicant}
      - {id: cb, name: Cán bộ, kind: office}
    documents: []
    steps:
      - {id: nop, name: Nộp hồ sơ, role: dan}
      - {id: bo_sung, name: Bổ sung giấy tờ, role: dan, when: {field: thieu_giay, equals: true}}
      - {id: xet, name: Xét duyệt, role: cb, outcomes: {dat: proceed, tra_lai: {return: bo_sung}}}
    """)


def test_a_return_to_a_skipped_applicant_step_neither_stops_the_clock_nor_counts() -> None:
    """Found by the stateful test: the return skips its target again (its
    ``when`` still fails), so nothing is asked of the applicant; the clock
    must not stop (no step would ever restart it) and guide once must not
    count it."""
    machine = CompiledProcedure(load_text(SKIPPED_TARGET))
    dan, cb = Actor("dan", "u1"), Actor("cb", "u1", frozenset({"cb"}))
    case, _ = machine.start(data={}, unit="u1", applicant="dan", actor=dan, now=START, calendar=CALENDAR)
    machine.act(case, step="nop", outcome="done", actor=dan, now=START, calendar=CALENDAR)
    machine.act(case, step="xet", outcome="tra_lai", actor=cb, now=START, calendar=CALENDAR)
    assert [s.status for s in case.steps] == [COMPLETED, SKIPPED, ACTIVE]  # as the format says
    machine.act(case, step="xet", outcome="dat", actor=cb, now=local(2027, 3, 3, 8, 0), calendar=CALENDAR)
    assert case.paused_since is None and case.guided is None
    assert case.status == CASE_COMPLETED


DATED = definition_text("""\
    fields:
      - {id: ngay_sinh, type: date}
    roles:
      - {id: dan, name: Người nộp, kind: applicant}
    documents: []
    steps:
      - {id: nop, name: Nộp hồ sơ, role: dan}
    """)


def test_a_date_object_is_stored_as_iso_text(service: CaseService, clock: Clock) -> None:
    """Found by the stateful test: a ``datetime.date`` passed the fields
    check but the case row's JSON column could not hold it."""
    publish_definition(service.store, DATED, now=clock())
    case = service.start(Actor("dan", "u1"), code="T-1", unit="u1", data={"ngay_sinh": dt.date(2000, 5, 1)})
    assert case.data == {"ngay_sinh": "2000-05-01"}
    assert service.get(Actor("dan", "u1"), case.id).data == {"ngay_sinh": "2000-05-01"}
