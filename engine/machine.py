"""Published definitions compiled into state machines, and what an action does.

A :class:`CompiledProcedure` is built once per published procedure version
and shared by every case of that version (and every thread): it holds a
``transitions`` machine of the case's lifecycle whose triggers are the
procedure's decisions (one per step and outcome, legal only while the step
is active), plus the step graph as positions and bitsets. A case's state is
plain data (:class:`CaseState`), handed to the machine as its model for the
length of one action; nothing is rebuilt per case or per action.

Each step's own lifecycle (waiting, active, completed, skipped, cancelled)
is a second machine, :data:`STEP_LIFECYCLE`, common to all procedures,
whose moves are read off once into a table (:data:`STEP_MOVES`): an engine
bug that tried, say, to complete a waiting step raises instead of corrupting
a case.

The rules are those of the format's section 6: steps activate when every
``after`` step is finished, a step whose ``when`` is false on activation is
skipped, ``proceed`` / ``reject`` / ``return``, system steps complete
themselves, guide once, withdrawal, completion, and the case clock that stops
while the applicant answers a return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from transitions import EventData, Machine, MachineError

from procedures.conditions import evaluate
from procedures.messages import t
from procedures.model import Definition, Effect, Step, bits

from .audit import is_decision
from .errors import CaseClosed, CommentTooLong, Forbidden, GuidedReturn, GuideOnce, InvalidAction, StepNotActive, UnstorableText
from .fields import amend, check_data, unstorable
from .refusals import case_closed, guided_once, not_the_actors, outcomes_text, step_not_active

# Step statuses and case statuses, as the format names them.
WAITING, ACTIVE, COMPLETED, SKIPPED, CANCELLED = "waiting", "active", "completed", "skipped", "cancelled"
STEP_STATUSES = (WAITING, ACTIVE, COMPLETED, SKIPPED, CANCELLED)
FINISHED = frozenset({COMPLETED, SKIPPED})
OPEN, CASE_COMPLETED, REJECTED, WITHDRAWN = "open", "completed", "rejected", "withdrawn"
CASE_STATUSES = (OPEN, CASE_COMPLETED, REJECTED, WITHDRAWN)
SYSTEM_ACTOR = "system"


class WorkingTime(Protocol):
    """What the engine needs of a working calendar (:mod:`engine.calendar`)."""

    def add(self, start: dt.datetime, hours: float) -> dt.datetime: ...

    def working_hours_between(self, start: dt.datetime, end: dt.datetime) -> float: ...


def _step_lifecycle() -> Machine:
    machine = Machine(
        model=None,
        states=list(STEP_STATUSES),
        initial=WAITING,
        auto_transitions=False,
        model_attribute="status",
    )
    machine.add_transition("activate", WAITING, ACTIVE)
    machine.add_transition("skip", WAITING, SKIPPED)
    machine.add_transition("finish", ACTIVE, COMPLETED)
    machine.add_transition("reset", [WAITING, ACTIVE, COMPLETED, SKIPPED], WAITING)
    machine.add_transition("cancel", [WAITING, ACTIVE], CANCELLED)
    return machine


STEP_LIFECYCLE = _step_lifecycle()
"""One step's lifecycle, as a machine."""


def _moves(machine: Machine) -> dict[tuple[str, str], str]:
    """``(trigger, source) -> destination`` of every transition of ``machine``.

    A step moves several times in every action, and going through the
    machine's event dispatch each time (callbacks, logging, state objects)
    cost as much as the rest of the action; the table is read off the machine
    once, so the machine stays the one place that says which moves exist.
    """
    return {
        (name, source): transition.dest
        for name, event in machine.events.items()
        for source, transitions in event.transitions.items()
        for transition in transitions
        if transition.dest is not None  # every move of the lifecycle changes the status
    }


STEP_MOVES = _moves(STEP_LIFECYCLE)
"""The legal moves of :data:`STEP_LIFECYCLE`, looked up by :meth:`StepState._move`."""


@dataclass(slots=True)
class StepState:
    """Where one step of one case stands."""

    status: str = WAITING
    activated_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    outcome: str | None = None
    actor: str | None = None

    def _move(self, trigger: str) -> None:
        """Take ``trigger`` of the step lifecycle.

        Raises:
            MachineError: the lifecycle has no such move from this status
                (an engine bug, stopped before it corrupts a case).
        """
        dest = STEP_MOVES.get((trigger, self.status))
        if dest is None:
            raise MachineError(f"a {self.status} step cannot {trigger}")
        self.status = dest


@dataclass(slots=True)
class CaseState:
    """One case as plain data: what is persisted, and the machine's model."""

    status: str
    unit: str
    applicant: str
    data: dict[str, Any]
    created_at: dt.datetime
    due_at: dt.datetime | None
    steps: list[StepState]
    paused_since: dt.datetime | None = None
    """while the case waits on the applicant after a return: since when"""
    guided: GuidedReturn | None = None
    """the case's one return to an applicant step, once taken"""
    id: int | None = None

    @property
    def closed(self) -> bool:
        return self.status != OPEN


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a signed-in user as the engine needs to know them."""

    id: str
    unit: str
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit event an action produced, before it is sealed and stored."""

    type: str
    """created, action, system, data or withdrawn"""
    actor: str
    at: dt.datetime
    step: str | None = None
    outcome: str | None = None
    comment: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON values only (instants as ISO text): the event is sealed from them as they are"""
    decision: bool = False


@dataclass
class _Action:
    """What one call passes through the machine's callbacks, and collects."""

    actor: Actor
    now: dt.datetime
    calendar: WorkingTime
    comment: str | None = None
    missing: tuple[str, ...] = ()
    entries: list[Entry] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def trigger_name(step: str, outcome: str) -> str:
    """The machine trigger of taking ``outcome`` on ``step`` (outcome names are free text)."""
    return f"{step}\x1f{outcome}"


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


class CompiledProcedure:
    """A published definition ready to run cases; build once, share freely."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        steps = definition.steps
        self.order = definition.order
        self.predecessors = definition.predecessors
        self.predecessor_bits = tuple(sum(1 << p for p in preds) for preds in definition.predecessors)
        self.all_steps = (1 << len(steps)) - 1
        self.descendants = definition.descendants
        self.role_kind = tuple(definition.role_kind(s) for s in steps)
        self.office_roles = frozenset(r.id for r in definition.roles if r.kind == "office")
        self.first_proceed = tuple(next((n for n, e in s.outcomes if e.kind == "proceed"), None) for s in steps)
        self.machine = self._build_machine()

    # -- the machine ----------------------------------------------------------
    def _build_machine(self) -> Machine:
        machine = Machine(
            model=None,
            states=list(CASE_STATUSES),
            initial=OPEN,
            auto_transitions=False,
            send_event=True,
            model_attribute="status",
        )
        for i, step in enumerate(self.definition.steps):
            active = self._is_active(i)
            for name, effect in step.outcomes:
                machine.add_transition(
                    trigger_name(step.id, name),
                    OPEN,
                    REJECTED if effect.kind == "reject" else None,
                    conditions=[active],
                    after=[self._effect(i, name, effect)],
                )
        machine.add_transition("withdraw", OPEN, WITHDRAWN, after=[self._on_withdraw])
        machine.add_transition("complete", OPEN, CASE_COMPLETED, conditions=[self._all_finished])
        return machine

    @staticmethod
    def _is_active(i: int) -> Callable[[EventData], bool]:
        def active(event: EventData) -> bool:
            case = cast(CaseState, event.model)
            return case.steps[i].status == ACTIVE

        return active

    def _all_finished(self, event: EventData) -> bool:
        case = cast(CaseState, event.model)
        return all(s.status in FINISHED for s in case.steps)

    def _effect(self, i: int, name: str, effect: Effect) -> Callable[[EventData], None]:
        def apply(event: EventData) -> None:
            case = cast(CaseState, event.model)
            action: _Action = event.kwargs["action"]
            self._take(case, action, i, name, effect)

        return apply

    def _on_withdraw(self, event: EventData) -> None:
        case = cast(CaseState, event.model)
        action: _Action = event.kwargs["action"]
        cancelled = self._cancel_unfinished(case)
        case.paused_since = None
        action.entries.append(
            Entry("withdrawn", action.actor.id, action.now, comment=action.comment, details={"cancelled": cancelled})
        )

    def _fire(self, trigger: str, case: CaseState, action: _Action) -> bool:
        return bool(self.machine.events[trigger].trigger(case, action=action))

    # -- what steps do --------------------------------------------------------
    def _take(self, case: CaseState, action: _Action, i: int, name: str, effect: Effect) -> None:
        step = self.definition.steps[i]
        state = case.steps[i]
        state.outcome, state.actor = name, action.actor.id
        details: dict[str, Any] = {"effect": effect.kind}
        target = -1
        if effect.kind == "return":
            assert effect.target is not None
            target = self.definition.index[effect.target]
            details["target"] = effect.target
            details["reset"] = self._reset(case, target)
        else:
            state._move("finish")
            state.completed_at = action.now
            if effect.kind == "reject":
                details["cancelled"] = self._cancel_unfinished(case)
                case.paused_since = None
            elif case.paused_since is not None and case.guided is not None and case.guided.target == step.id:
                details.update(self._resume_clock(case, action))
        entry_at = len(action.entries)  # this action's event comes before those of the system steps it sets off
        if effect.kind != "reject":
            self._settle(case, action)
        # The clock stands still only while the case waits on the applicant:
        # a return that sends the applicant's step back to waiting (the
        # applicant's own, or an official's to a step before it) starts it again.
        waited_on = case.guided.target if case.paused_since is not None and case.guided is not None else None
        if effect.kind == "return" and waited_on is not None and case.steps[self.definition.index[waited_on]].status != ACTIVE:
            details.update(self._resume_clock(case, action))
        # A return reaches the applicant only if their step is active again (a
        # step whose condition no longer holds is skipped): only then does the
        # case wait on them, with its clock stopped, and guide once count it.
        if target >= 0 and self._to_applicant(effect) and case.steps[target].status == ACTIVE:
            assert effect.target is not None
            case.guided = GuidedReturn(step.id, name, effect.target, action.actor.id, _iso(action.now), action.missing)
            case.paused_since = action.now
            details["clock"] = "paused"
            if action.missing:
                details["missing"] = list(action.missing)
        details["activated"], details["skipped"] = action.activated, action.skipped
        decision = is_decision(step.kind, effect.kind)
        action.entries.insert(
            entry_at, Entry("action", action.actor.id, action.now, step.id, name, action.comment, details, decision)
        )

    def _resume_clock(self, case: CaseState, action: _Action) -> dict[str, Any]:
        """The applicant answered the return: the case's clock runs again and
        its due time moves later by the working time it stood still."""
        assert case.paused_since is not None
        paused = action.calendar.working_hours_between(case.paused_since, action.now)
        out: dict[str, Any] = {"clock": "resumed", "paused_hours": paused}
        if case.due_at is not None and paused > 0:
            old = case.due_at
            case.due_at = action.calendar.add(old, paused)
            out["case_due_at"] = [_iso(old), _iso(case.due_at)]
        case.paused_since = None
        return out

    def _reset(self, case: CaseState, target: int) -> list[str]:
        ids = []
        for j in sorted([target, *bits(self.descendants[target])]):
            state = case.steps[j]
            if state.status != WAITING or state.outcome is not None:
                ids.append(self.definition.steps[j].id)
            state._move("reset")
            state.activated_at = state.due_at = state.completed_at = None
            state.outcome = state.actor = None
        return ids

    def _cancel_unfinished(self, case: CaseState) -> list[str]:
        out = []
        for j, state in enumerate(case.steps):
            if state.status in (WAITING, ACTIVE):
                state._move("cancel")
                out.append(self.definition.steps[j].id)
        return out

    def _settle(self, case: CaseState, action: _Action) -> None:
        """Activate (or skip) every waiting step whose ``after`` steps are
        finished; system steps complete themselves, which may ready more.

        One pass in topological order suffices: finishing a step only ever
        readies steps after it in that order.
        """
        steps = self.definition.steps
        finished = 0  # bitset of the finished steps, kept up to date through the pass
        for j, state in enumerate(case.steps):
            if state.status in FINISHED:
                finished |= 1 << j
        for i in self.order:
            state = case.steps[i]
            if state.status != WAITING or self.predecessor_bits[i] & ~finished:
                continue
            step = steps[i]
            if step.when is not None and not evaluate(step.when, case.data):
                state._move("skip")
                action.skipped.append(step.id)
                finished |= 1 << i
                continue
            state._move("activate")
            state.activated_at = action.now
            state.due_at = action.calendar.add(action.now, step.duration) if step.duration > 0 else None
            action.activated.append(step.id)
            if self.role_kind[i] == "system":
                self._system_completes(case, action, i, step)
                finished |= 1 << i
        # (asked first so that an action which finishes nothing spares the
        # machine a trigger; the transition keeps its own condition)
        if case.status == OPEN and finished == self.all_steps:
            self._fire("complete", case, action)

    def _system_completes(self, case: CaseState, action: _Action, i: int, step: Step) -> None:
        name = self.first_proceed[i]
        assert name is not None  # every valid step has a proceed outcome
        state = case.steps[i]
        state._move("finish")
        state.completed_at, state.outcome, state.actor = action.now, name, SYSTEM_ACTOR
        action.entries.append(Entry("system", SYSTEM_ACTOR, action.now, step.id, name))

    # -- the operations ---------------------------------------------------------
    def start(
        self,
        *,
        data: Any,
        unit: str,
        applicant: str,
        actor: Actor,
        now: dt.datetime,
        calendar: WorkingTime,
    ) -> tuple[CaseState, list[Entry]]:
        """A new case and the events of its creation.

        Raises:
            InvalidData: ``data`` breaks the procedure's fields.
        """
        checked = check_data(self.definition, data)
        limit = self.definition.time_limit
        case = CaseState(
            status=OPEN,
            unit=unit,
            applicant=applicant,
            data=checked,
            created_at=now,
            due_at=calendar.add(now, limit) if limit else None,
            steps=[StepState() for _ in self.definition.steps],
        )
        action = _Action(actor, now, calendar)
        details: dict[str, Any] = {
            "procedure": {"code": self.definition.code, "version": self.definition.version},
            "unit": unit,
            "applicant": applicant,
            "data": checked,
        }
        action.entries.append(Entry("created", actor.id, now, details=details))
        self._settle(case, action)
        action.entries[0] = Entry(
            "created", actor.id, now, details={**details, "activated": action.activated, "skipped": action.skipped}
        )
        return case, action.entries

    def may_act(self, case: CaseState, actor: Actor, i: int) -> bool:
        """Whether ``actor`` holds step ``i``'s role for this case (service.md section 2)."""
        kind = self.role_kind[i]
        if kind == "applicant":
            return actor.id == case.applicant
        if kind == "office":
            return actor.unit == case.unit and self.definition.steps[i].role in actor.roles
        return False

    def act(
        self,
        case: CaseState,
        *,
        step: str,
        outcome: str,
        actor: Actor,
        now: dt.datetime,
        calendar: WorkingTime,
        comment: str | None = None,
        missing: Iterable[str] = (),
        data: Mapping[str, Any] | None = None,
    ) -> list[Entry]:
        """Take ``outcome`` on ``step``; ``case`` is changed in place only when
        the action is accepted.

        Checks run in the order of service.md section 3: the step and outcome
        exist, the actor holds the role, then the state (case open, step
        active, guide once), then ``data`` and ``missing``.

        Raises:
            UnstorableText: ``comment`` holds a NUL character or a lone surrogate.
            CommentTooLong: ``comment`` is over :data:`COMMENT_LENGTH` characters.
            InvalidAction: no such step or outcome, or ``missing`` names
                documents the procedure does not have, or ``data`` on a
                step that is not the applicant's.
            Forbidden: the actor does not hold the step's role.
            CaseClosed, StepNotActive, GuideOnce: the case's state refuses it.
            InvalidData: ``data`` breaks the procedure's fields.
        """
        _storable(comment, case.id)
        defn = self.definition
        i = defn.index.get(step)
        if i is None:
            raise InvalidAction(t("the procedure has no step «{step}»", step=step), case_id=case.id, step=step, outcome=outcome)
        effect = defn.steps[i].outcome(outcome)
        if effect is None:
            raise InvalidAction(outcomes_text(defn, i, outcome), case_id=case.id, step=step, outcome=outcome)
        missing = tuple(missing)
        unknown = [d for d in missing if d not in defn.document_by_id]
        if unknown:
            raise InvalidAction(
                t("missing names documents the procedure does not have: {documents}", documents=", ".join(unknown)),
                case_id=case.id,
                step=step,
                outcome=outcome,
            )
        if data is not None and self.role_kind[i] != "applicant":
            raise InvalidAction(
                t("case data can be amended only on an applicant step"), case_id=case.id, step=step, outcome=outcome
            )
        if not self.may_act(case, actor, i):
            raise Forbidden(not_the_actors(defn, i, self.role_kind[i], case.unit), case_id=case.id, step=step, outcome=outcome)
        if case.closed:
            raise CaseClosed(case_closed(case.status), case_id=case.id, step=step, outcome=outcome)
        if case.steps[i].status != ACTIVE:
            raise StepNotActive(
                step_not_active(defn.steps[i].name, case.steps[i].status), case_id=case.id, step=step, outcome=outcome
            )
        earlier = case.guided
        if earlier is not None and effect.kind == "return" and self._to_applicant(effect):
            raise GuideOnce(guided_once(defn, earlier), case_id=case.id, step=step, outcome=outcome, earlier=earlier)
        changes: dict[str, Any] = {}
        new_data = case.data
        if data is not None:
            new_data, changes = amend(defn, case.data, data, case_id=case.id)
        action = _Action(actor, now, calendar, comment=comment, missing=missing)
        if changes:
            case.data = new_data
            action.entries.append(Entry("data", actor.id, now, step, None, None, {"changes": changes}))
        self._fire(trigger_name(step, outcome), case, action)
        return action.entries

    def withdraw(
        self, case: CaseState, *, actor: Actor, now: dt.datetime, calendar: WorkingTime, comment: str | None = None
    ) -> list[Entry]:
        """The applicant withdraws the case: every unfinished step is cancelled.

        Raises:
            UnstorableText: ``comment`` holds a NUL character or a lone surrogate.
            CommentTooLong: ``comment`` is over :data:`COMMENT_LENGTH` characters.
            Forbidden: the actor is not the case's applicant.
            CaseClosed: the case is already closed.
        """
        _storable(comment, case.id)
        if actor.id != case.applicant:
            raise Forbidden(t("only the case's applicant may withdraw it"), case_id=case.id)
        if case.closed:
            raise CaseClosed(case_closed(case.status), case_id=case.id)
        action = _Action(actor, now, calendar, comment=comment)
        self._fire("withdraw", case, action)
        return action.entries

    def _to_applicant(self, effect: Effect) -> bool:
        return effect.target is not None and self.role_kind[self.definition.index[effect.target]] == "applicant"

    # -- questions --------------------------------------------------------------
    def actionable(self, case: CaseState, actor: Actor) -> list[str]:
        """Active steps of ``case`` that ``actor`` may act on."""
        if case.closed:
            return []
        return [
            self.definition.steps[i].id for i, s in enumerate(case.steps) if s.status == ACTIVE and self.may_act(case, actor, i)
        ]

    def overdue(self, case: CaseState, now: dt.datetime) -> list[str]:
        """Active steps past their due time."""
        return [
            self.definition.steps[i].id
            for i, s in enumerate(case.steps)
            if s.status == ACTIVE and s.due_at is not None and s.due_at < now
        ]


COMMENT_LENGTH = 4000
"""The longest comment an action or a withdrawal takes, in characters, from
the API and the pages alike."""


def _storable(comment: str | None, case_id: int | None) -> None:
    """Refuse a comment no database here could store (a NUL character, a
    lone surrogate), on every database alike, or one over :data:`COMMENT_LENGTH`."""
    if comment is None:
        return
    if unstorable(comment):
        raise UnstorableText(t("the comment must not contain NUL characters or lone surrogates"), case_id=case_id)
    if len(comment) > COMMENT_LENGTH:
        raise CommentTooLong(len(comment), COMMENT_LENGTH, case_id=case_id)
