"""The case semantics of procedure-format.md section 6, one rule at a time,
on the compiled machine alone (no database)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from transitions import MachineError

from engine.errors import CaseClosed, Forbidden, GuideOnce, InvalidAction, InvalidData, StepNotActive
from engine.machine import STEP_LIFECYCLE, STEP_MOVES, Actor, CaseState, CompiledProcedure, Entry, StepState
from procedures import load_path, load_text
from procedures.messages import speaking
from tests.conftest import DEFINITIONS, definition_text, shared_path
from tests.engine.conftest import CALENDAR, applicant, local, office

# A small procedure with every feature of section 6: a start step, two
# parallel branches joined again (AND-join), a conditional step, a system
# step, a return to the applicant and one to an office step, and a reject.
SMALL = """\
time_limit: 5d
fields:
  - {id: urgent, type: boolean}
  - {id: kind, type: enum, values: [a, b], required: true}
  - {id: age, type: integer}
roles:
  - {id: dan, name: Người dân, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
  - {id: kt, name: Kế toán, kind: office}
  - {id: ld, name: Lãnh đạo, kind: office}
  - {id: ht, name: Hệ thống, kind: system}
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: qd, name: Quyết định, deliverable: true}
steps:
  - {id: nop, name: Nộp đơn, role: dan, kind: submit, duration: 1h, inputs: [don]}
  - id: kiem_tra
    name: Kiểm tra
    role: cb
    kind: review
    duration: 4h
    inputs: [don]
    outcomes: {dat: proceed, bo_sung: {return: nop}, tu_choi: reject}
  - {id: xac_minh, name: Xác minh, role: cb, kind: verify, duration: 1d, after: [kiem_tra]}
  - {id: tinh_phi, name: Tính phí, role: kt, duration: 2h, after: [kiem_tra]}
  - {id: gap, name: Xử lý gấp, role: kt, after: [kiem_tra], when: {field: urgent, equals: true}}
  - id: duyet
    name: Duyệt
    role: ld
    kind: approve
    duration: 2h
    after: [xac_minh, tinh_phi, gap]
    outcomes: {dong_y: proceed, lam_lai: {return: xac_minh}}
  - {id: phat_hanh, name: Phát hành, role: ht, kind: issue, outputs: [qd]}
"""

DAN = applicant("dan")
CB, KT, LD = office("cb"), office("kt"), office("ld")
START = local(2027, 3, 1, 8, 0)  # Monday 08:00


def compiled(body: str = SMALL) -> CompiledProcedure:
    return CompiledProcedure(load_text(definition_text(body)))


def status(machine: CompiledProcedure, case: CaseState) -> dict[str, str]:
    return {s.id: st.status for s, st in zip(machine.definition.steps, case.steps, strict=True)}


class Run:
    """One case driven step by step, with a clock."""

    def __init__(self, machine: CompiledProcedure, data: dict[str, Any] | None = None, now: dt.datetime = START) -> None:
        self.machine = machine
        self.now = now
        self.case, self.entries = machine.start(
            data={"kind": "a"} if data is None else data, unit="u1", applicant="dan", actor=DAN, now=now, calendar=CALENDAR
        )

    def act(self, step: str, outcome: str, actor: Actor, **kw: Any) -> list[Entry]:
        entries = self.machine.act(self.case, step=step, outcome=outcome, actor=actor, now=self.now, calendar=CALENDAR, **kw)
        self.entries += entries
        return entries

    def at(self, *when: int) -> Run:
        self.now = local(*when)
        return self

    @property
    def status(self) -> dict[str, str]:
        return status(self.machine, self.case)

    def step(self, step_id: str) -> StepState:
        return self.case.steps[self.machine.definition.index[step_id]]

    def through_review(self) -> Run:
        self.act("nop", "done", DAN)
        self.act("kiem_tra", "dat", CB)
        return self


def test_creation_activates_every_step_whose_after_steps_are_finished() -> None:
    body = SMALL.replace("after: [kiem_tra]}", "after: []}", 1)  # xac_minh starts at once too
    run = Run(compiled(body))
    assert [s for s, st in run.status.items() if st == "active"] == ["nop", "xac_minh"]
    assert run.case.status == "open"
    assert run.entries[0].type == "created" and run.entries[0].details["activated"] == ["nop", "xac_minh"]


def test_proceed_completes_the_step_and_activates_what_became_ready() -> None:
    run = Run(compiled())
    run.act("nop", "done", DAN)
    assert run.status["nop"] == "completed" and run.status["kiem_tra"] == "active"
    assert run.step("nop").outcome == "done" and run.step("nop").actor == "dan"


def test_and_join_waits_for_every_after_step() -> None:
    run = Run(compiled()).through_review()
    assert (run.status["xac_minh"], run.status["tinh_phi"]) == ("active", "active")
    run.act("xac_minh", "done", CB)
    assert run.status["duyet"] == "waiting"
    run.act("tinh_phi", "done", KT)
    assert run.status["duyet"] == "active"


def test_a_step_whose_condition_is_false_is_skipped_and_counts_as_finished() -> None:
    run = Run(compiled(), {"kind": "a", "urgent": False}).through_review()
    assert run.status["gap"] == "skipped"
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    assert run.status["duyet"] == "active"


def test_a_missing_field_makes_equals_false_so_the_step_is_skipped() -> None:
    run = Run(compiled(), {"kind": "a"}).through_review()
    assert run.status["gap"] == "skipped"


def test_a_step_whose_condition_holds_runs() -> None:
    run = Run(compiled(), {"kind": "a", "urgent": True}).through_review()
    assert run.status["gap"] == "active"
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    assert run.status["duyet"] == "waiting"
    run.act("gap", "done", KT)
    assert run.status["duyet"] == "active"


def test_a_system_step_completes_itself_with_its_first_proceed_outcome() -> None:
    run = Run(compiled()).through_review()
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    entries = run.act("duyet", "dong_y", LD)
    assert run.status["phat_hanh"] == "completed"
    assert run.step("phat_hanh").outcome == "done" and run.step("phat_hanh").actor == "system"
    assert [(e.type, e.step) for e in entries] == [("action", "duyet"), ("system", "phat_hanh")]


def test_the_case_completes_when_every_step_is_completed_or_skipped() -> None:
    run = Run(compiled()).through_review()
    run.act("xac_minh", "done", CB)
    assert run.case.status == "open"
    run.act("tinh_phi", "done", KT)
    run.act("duyet", "dong_y", LD)
    assert run.case.status == "completed"
    assert set(run.status.values()) == {"completed", "skipped"}


def test_reject_ends_the_case_and_cancels_every_unfinished_step() -> None:
    body = SMALL.replace("outcomes: {dat: proceed, bo_sung: {return: nop}, tu_choi: reject}", "outcomes: {dat: proceed}").replace(
        "{id: tinh_phi, name: Tính phí, role: kt, duration: 2h, after: [kiem_tra]}",
        "{id: tinh_phi, name: Tính phí, role: kt, duration: 2h, after: [kiem_tra], outcomes: {xong: proceed, tu_choi: reject}}",
    )
    run = Run(compiled(body)).through_review()
    entries = run.act("tinh_phi", "tu_choi", KT)
    assert run.case.status == "rejected"
    # the decision itself is recorded on its step; the parallel branch that
    # was still active, and everything waiting, is cancelled
    assert run.step("tinh_phi").status == "completed" and run.step("tinh_phi").outcome == "tu_choi"
    assert run.status["xac_minh"] == "cancelled"
    assert {run.status[s] for s in ("duyet", "phat_hanh", "gap")} <= {"cancelled", "skipped"}
    assert entries[0].details["cancelled"] == ["xac_minh", "duyet", "phat_hanh"]
    assert entries[0].decision


def test_return_resets_the_target_and_its_dependants_and_activates_the_target() -> None:
    run = Run(compiled()).through_review()
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    entries = run.act("duyet", "lam_lai", LD)
    assert run.status["xac_minh"] == "active"
    assert run.status["duyet"] == "waiting" and run.step("duyet").outcome is None
    # tinh_phi does not depend on xac_minh: its work stands
    assert run.status["tinh_phi"] == "completed"
    assert entries[0].details["reset"] == ["xac_minh", "duyet"]
    assert entries[0].decision


def test_return_to_the_first_step_resets_everything_after_it() -> None:
    machine = compiled(SMALL.replace("lam_lai: {return: xac_minh}", "lam_lai: {return: xac_minh}, bo_sung: {return: nop}"))
    run = Run(machine).through_review()
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    run.at(2027, 3, 2, 9, 0)
    entries = run.act("duyet", "bo_sung", LD, missing=["don"])
    assert run.status["nop"] == "active" and run.step("nop").activated_at == local(2027, 3, 2, 9, 0)
    assert all(st == "waiting" for s, st in run.status.items() if s != "nop")
    assert run.step("xac_minh").completed_at is None and run.step("xac_minh").due_at is None
    assert entries[0].details["reset"] == ["nop", "kiem_tra", "xac_minh", "tinh_phi", "gap", "duyet"]
    assert run.case.guided is not None and run.case.guided.step == "duyet"


def test_guide_once_a_second_return_to_the_applicant_is_refused_naming_the_first() -> None:
    run = Run(compiled())
    run.act("nop", "done", DAN)
    run.at(2027, 3, 1, 9, 0)
    first = run.act("kiem_tra", "bo_sung", CB, missing=["don"])
    assert first[0].details["missing"] == ["don"]
    assert run.case.guided is not None and run.case.guided.missing == ("don",)
    run.at(2027, 3, 1, 10, 0)
    run.act("nop", "done", DAN)
    before = copy.deepcopy(run.case)
    with pytest.raises(GuideOnce) as caught:
        run.act("kiem_tra", "bo_sung", CB)
    assert caught.value.earlier.step == "kiem_tra" and caught.value.earlier.actor == CB.id
    assert "bước «Kiểm tra», quyết định «bo_sung»" in str(caught.value) and "hướng dẫn một lần" in str(caught.value)
    assert run.case == before  # refused: nothing changed
    # the official may still decide otherwise
    run.act("kiem_tra", "dat", CB)
    assert run.status["xac_minh"] == "active"


def test_returns_to_office_steps_are_not_limited_by_guide_once() -> None:
    run = Run(compiled()).through_review()
    for _ in range(3):
        run.act("xac_minh", "done", CB)
        if run.status["tinh_phi"] == "active":
            run.act("tinh_phi", "done", KT)
        run.act("duyet", "lam_lai", LD)
    assert run.status["xac_minh"] == "active" and run.case.guided is None


def test_withdraw_by_the_applicant_cancels_every_unfinished_step() -> None:
    run = Run(compiled()).through_review()
    entries = run.machine.withdraw(run.case, actor=DAN, now=run.now, calendar=CALENDAR, comment="Không cần nữa")
    assert run.case.status == "withdrawn"
    assert run.status["nop"] == run.status["kiem_tra"] == "completed"
    assert {run.status[s] for s in ("xac_minh", "tinh_phi", "duyet", "phat_hanh")} == {"cancelled"}
    assert entries[0].type == "withdrawn" and entries[0].comment == "Không cần nữa"


def test_only_the_applicant_may_withdraw() -> None:
    run = Run(compiled())
    with pytest.raises(Forbidden):
        run.machine.withdraw(run.case, actor=CB, now=run.now, calendar=CALENDAR)
    assert run.case.status == "open"


@pytest.mark.parametrize("end", ["withdraw", "reject", "complete"])
def test_a_closed_case_accepts_no_further_action(end: str) -> None:
    run = Run(compiled()).through_review()
    if end == "withdraw":
        run.machine.withdraw(run.case, actor=DAN, now=run.now, calendar=CALENDAR)
    elif end == "reject":
        run = Run(compiled())
        run.act("nop", "done", DAN)
        run.act("kiem_tra", "tu_choi", CB)
    else:
        run.act("xac_minh", "done", CB)
        run.act("tinh_phi", "done", KT)
        run.act("duyet", "dong_y", LD)
    before = copy.deepcopy(run.case)
    with pytest.raises(CaseClosed):
        run.act("xac_minh", "done", CB)
    with pytest.raises(CaseClosed):
        run.machine.withdraw(run.case, actor=DAN, now=run.now, calendar=CALENDAR)
    assert run.case == before


def test_acting_on_a_step_that_is_not_active_is_refused() -> None:
    run = Run(compiled())
    with pytest.raises(StepNotActive, match="bước «Kiểm tra» đang chờ các bước trước"):
        run.act("kiem_tra", "dat", CB)
    run.act("nop", "done", DAN)
    with pytest.raises(StepNotActive, match="bước «Nộp đơn» đã hoàn thành"):
        run.act("nop", "done", DAN)


def test_unknown_steps_and_outcomes_are_invalid_before_anything_else() -> None:
    run = Run(compiled())
    with pytest.raises(InvalidAction, match="thủ tục không có bước «khong_co»"):
        run.act("khong_co", "done", CB)
    with pytest.raises(InvalidAction, match="của bước: dat, bo_sung, tu_choi"):
        run.act("kiem_tra", "khong_co", Actor("x", "other"))  # invalid wins over forbidden
    with pytest.raises(InvalidAction, match="giấy tờ mà thủ tục không có: khong_co"):
        run.act("nop", "done", DAN, missing=["khong_co"])


@pytest.mark.parametrize(
    "actor",
    [
        office("cb", "u2"),  # the role, in another unit
        office("kt"),  # another role of the unit
        Actor("admin", "u1", frozenset(), frozenset({"admin"})),  # admin alone acts on nothing
    ],
)
def test_an_office_step_needs_its_role_in_the_cases_unit(actor: Actor) -> None:
    run = Run(compiled())
    run.act("nop", "done", DAN)
    with pytest.raises(Forbidden, match="bước «Kiểm tra» cần vai trò «Cán bộ» trong đơn vị «u1»"):
        run.act("kiem_tra", "dat", actor)


def test_an_applicant_step_is_the_cases_applicant_only() -> None:
    run = Run(compiled())
    with pytest.raises(Forbidden, match="chỉ người nộp hồ sơ"):
        run.act("nop", "done", applicant("someone_else"))
    with pytest.raises(Forbidden):
        run.act("nop", "done", office("dan"))  # holding a role named like the applicant's is not enough


def test_nobody_acts_on_a_system_step() -> None:
    defn = """\
roles:
  - {id: cb, name: Cán bộ, kind: office}
  - {id: ht, name: Hệ thống, kind: system}
documents: []
steps:
  - {id: a, name: A, role: cb}
  - {id: b, name: B, role: ht, after: [a]}
  - {id: c, name: C, role: cb, after: [b]}
"""
    machine = compiled(defn)
    case, _ = machine.start(data={}, unit="u1", applicant="dan", actor=DAN, now=START, calendar=CALENDAR)
    machine.act(case, step="a", outcome="done", actor=CB, now=START, calendar=CALENDAR)
    assert status(machine, case) == {"a": "completed", "b": "completed", "c": "active"}
    with pytest.raises(Forbidden, match="bước «B» do hệ thống thực hiện"):
        machine.act(case, step="b", outcome="done", actor=office("ht"), now=START, calendar=CALENDAR)


def test_system_steps_at_the_start_run_at_creation_and_may_complete_the_case() -> None:
    defn = """\
roles:
  - {id: ht, name: Hệ thống, kind: system}
documents: []
steps:
  - {id: a, name: A, role: ht}
  - {id: b, name: B, role: ht}
"""
    machine = compiled(defn)
    case, entries = machine.start(data={}, unit="u1", applicant="dan", actor=DAN, now=START, calendar=CALENDAR)
    assert case.status == "completed"
    assert [(e.type, e.step) for e in entries] == [("created", None), ("system", "a"), ("system", "b")]


# -- deadlines ------------------------------------------------------------------
def test_each_active_step_is_due_its_duration_of_working_time_after_activation() -> None:
    run = Run(compiled(), now=local(2027, 3, 5, 16, 30))  # Friday 16:30
    assert run.step("nop").due_at == local(2027, 3, 8, 8, 30)  # 1h later, over the weekend
    run.at(2027, 3, 8, 11, 0)
    run.act("nop", "done", DAN)
    assert run.step("kiem_tra").activated_at == local(2027, 3, 8, 11, 0)
    assert run.step("kiem_tra").due_at == local(2027, 3, 8, 16, 0)  # 4h, over the lunch hour
    assert run.step("nop").completed_at == local(2027, 3, 8, 11, 0)


def test_a_step_of_duration_zero_has_no_due_time() -> None:
    run = Run(compiled(), {"kind": "a", "urgent": True}).through_review()
    assert run.status["gap"] == "active" and run.step("gap").due_at is None


def test_the_case_is_due_its_time_limit_after_creation() -> None:
    run = Run(compiled(), now=local(2027, 4, 28, 10, 0))  # Wednesday before 30/4 and 1/5 (observed Monday 3/5)
    # 5 working days: 28/4 10:00 -> 29/4, 4/5, 5/5, 6/5 full days, and 7/5 until 10:00
    assert run.case.due_at == local(2027, 5, 7, 10, 0)


def test_a_procedure_without_time_limit_gives_the_case_no_due_time() -> None:
    run = Run(compiled(SMALL.replace("time_limit: 5d\n", "")))
    assert run.case.due_at is None


def test_the_clock_stops_while_the_applicant_answers_a_return() -> None:
    run = Run(compiled(), now=local(2027, 3, 1, 8, 0))
    due = run.case.due_at
    assert due == local(2027, 3, 5, 17, 0)  # five working days, ending at the close of Friday
    run.at(2027, 3, 1, 9, 0).act("nop", "done", DAN)
    run.at(2027, 3, 1, 10, 0).act("kiem_tra", "bo_sung", CB, missing=["don"])
    assert run.case.paused_since == local(2027, 3, 1, 10, 0)
    # the applicant takes a day and a half of working time to answer
    entries = run.at(2027, 3, 2, 15, 0).act("nop", "done", DAN)
    assert run.case.paused_since is None
    assert entries[0].details["paused_hours"] == pytest.approx(12.0)
    assert run.case.due_at == CALENDAR.add(due, 12.0) == local(2027, 3, 9, 12, 0)  # type: ignore[arg-type]


def test_the_clock_runs_again_when_the_applicant_sends_the_case_back_instead_of_answering() -> None:
    """The applicant's step may itself return the case to an office step:
    the case no longer waits on the applicant, so its clock runs again
    (it would otherwise stand still while officials work)."""
    body = SMALL.replace(
        "  - {id: nop, name: Nộp đơn, role: dan, kind: submit, duration: 1h, inputs: [don]}\n",
        "  - {id: tiep_nhan, name: Tiếp nhận, role: cb, duration: 1h}\n"
        "  - {id: nop, name: Nộp đơn, role: dan, kind: submit, duration: 1h, inputs: [don],"
        " outcomes: {done: proceed, hoi_lai: {return: tiep_nhan}}}\n",
    )
    run = Run(compiled(body), now=local(2027, 3, 1, 8, 0))
    due = run.case.due_at
    run.at(2027, 3, 1, 8, 30).act("tiep_nhan", "done", CB)
    run.at(2027, 3, 1, 9, 0).act("nop", "done", DAN)
    run.at(2027, 3, 1, 10, 0).act("kiem_tra", "bo_sung", CB, missing=["don"])
    assert run.case.paused_since == local(2027, 3, 1, 10, 0)
    entries = run.at(2027, 3, 1, 14, 0).act("nop", "hoi_lai", DAN)  # three working hours later (lunch aside)
    assert run.status["nop"] == "waiting" and run.status["tiep_nhan"] == "active"
    assert run.case.paused_since is None
    assert entries[0].details["clock"] == "resumed" and entries[0].details["paused_hours"] == pytest.approx(3.0)
    assert run.case.due_at == CALENDAR.add(due, 3.0)  # type: ignore[arg-type]


def test_overdue_steps_are_those_past_their_due_time() -> None:
    run = Run(compiled(), now=local(2027, 3, 1, 8, 0))
    assert run.machine.overdue(run.case, local(2027, 3, 1, 9, 0)) == []
    assert run.machine.overdue(run.case, local(2027, 3, 1, 9, 1)) == ["nop"]


# -- data ---------------------------------------------------------------------------
def test_case_data_is_checked_against_the_fields_with_an_error_per_field() -> None:
    with pytest.raises(InvalidData) as caught:
        Run(compiled(), {"urgent": "yes", "age": 1.5, "kind": "c", "extra": 1})
    problems = {p.field: p.message for p in caught.value.problems}
    assert set(problems) == {"urgent", "age", "kind", "extra"}
    assert "'yes'" in problems["urgent"] and "1.5" in problems["age"]
    assert "'c'" in problems["kind"] and "trường không có trong thủ tục" in problems["extra"]
    with pytest.raises(InvalidData) as caught:
        Run(compiled(), {})
    assert [(p.field, p.message, p.kind) for p in caught.value.problems] == [("kind", "bắt buộc phải có", "required")]


def test_the_applicant_amends_data_on_an_applicant_step_and_it_is_recorded() -> None:
    run = Run(compiled())
    entries = run.act("nop", "done", DAN, data={"urgent": True, "age": 30})
    assert run.case.data == {"kind": "a", "urgent": True, "age": 30}
    assert entries[0].type == "data"
    assert entries[0].details["changes"] == {"age": [None, 30], "urgent": [None, True]}


def test_invalid_amended_data_changes_nothing() -> None:
    run = Run(compiled())
    before = copy.deepcopy(run.case)
    with pytest.raises(InvalidData):
        run.act("nop", "done", DAN, data={"kind": None})
    assert run.case == before


def test_officials_do_not_amend_data_through_their_steps() -> None:
    run = Run(compiled())
    run.act("nop", "done", DAN)
    with pytest.raises(InvalidAction, match="ở bước của người nộp"):
        run.act("kiem_tra", "dat", CB, data={"urgent": True})


def test_a_refusal_names_the_step_in_vietnamese_unless_english_is_asked_for() -> None:
    run = Run(compiled())
    with pytest.raises(StepNotActive) as caught:
        run.act("kiem_tra", "dat", CB)
    assert caught.value.message == "bước «Kiểm tra» đang chờ các bước trước hoàn thành, chưa đến lượt xử lý"
    assert caught.value.step == "kiem_tra"  # the id, for machines
    with speaking("en"), pytest.raises(StepNotActive) as caught:
        run.act("kiem_tra", "dat", CB)
    assert caught.value.message == "step «Kiểm tra» is waiting for the steps before it, not active"


# -- decisions, machines --------------------------------------------------------------
def test_decision_events_are_approve_and_sign_steps_and_every_reject_or_return() -> None:
    run = Run(compiled()).through_review()
    assert [e.decision for e in run.entries] == [False, False, False]  # created, submit, review's proceed
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    assert run.act("duyet", "dong_y", LD)[0].decision  # approve


def test_one_machine_per_version_shared_by_every_case() -> None:
    machine = compiled()
    runs = [Run(machine) for _ in range(3)]
    runs[0].act("nop", "done", DAN)
    assert runs[1].status["nop"] == "active"  # the cases share no state
    assert not machine.machine.models and not STEP_LIFECYCLE.models  # no case was ever added to a machine


def test_the_step_lifecycle_table_is_the_machine_and_refuses_an_illegal_move() -> None:
    # the table must agree with the machine, move for move
    for (trigger, source), dest in STEP_MOVES.items():
        state = StepState(status=source)
        assert STEP_LIFECYCLE.events[trigger].trigger(state) and state.status == dest
    for trigger in STEP_LIFECYCLE.events:
        for source in STEP_LIFECYCLE.states:
            state = StepState(status=source)
            if (trigger, source) in STEP_MOVES:
                state._move(trigger)
                assert state.status == STEP_MOVES[trigger, source]
            else:
                with pytest.raises(MachineError, match=f"a {source} step cannot {trigger}"):
                    state._move(trigger)
                assert state.status == source
    assert STEP_MOVES[("finish", "active")] == "completed" and ("finish", "waiting") not in STEP_MOVES


@pytest.mark.parametrize("path", [shared_path("procedures", "xuat-ngu.v1.yaml"), DEFINITIONS / "che-do-xuat-ngu.v2.yaml"])
def test_the_demobilisation_procedure_runs_to_completion(path: Any) -> None:
    defn = load_path(path)
    machine = CompiledProcedure(defn)
    data: dict[str, Any] = {}
    for f in defn.fields:
        data[f.id] = {"string": "Nguyễn Văn A", "integer": 24, "boolean": True, "enum": (f.values or ("x",))[0]}.get(
            f.type, "2027-01-01"
        )
    case, _ = machine.start(data=data, unit="u1", applicant="dan", actor=DAN, now=START, calendar=CALENDAR)
    applicant_role = defn.applicant_role
    for _ in range(len(defn.steps) + 1):
        active = [i for i, s in enumerate(case.steps) if s.status == "active"]
        if not active:
            break
        i = active[0]
        step = defn.steps[i]
        actor = DAN if step.role == applicant_role else office(step.role)
        proceed = next(n for n, e in step.outcomes if e.kind == "proceed")
        machine.act(case, step=step.id, outcome=proceed, actor=actor, now=START, calendar=CALENDAR)
    assert case.status == "completed"
