"""Cases kept in the database, on SQLite and on PostgreSQL: the service's
operations, the schema's migrations, optimistic concurrency and the
tamper-evident audit trail."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine.cases import CaseService, utcnow
from engine.db import AmendmentRow, Base, CaseRow, CaseStepRow, EventRow, IdempotencyRow
from engine.errors import (
    Abolished,
    CaseClosed,
    CommentTooLong,
    Conflict,
    Forbidden,
    GuideOnce,
    IdempotencyInFlight,
    IdempotencyMismatch,
    InvalidAction,
    InvalidData,
    NotFound,
    NotPublished,
    StaleCase,
    StepNotActive,
)
from engine.fields import nul_text
from engine.idempotency import Idempotency
from engine.keys import Signer
from engine.machine import COMMENT_LENGTH, Actor, CompiledProcedure
from engine.publishing import publish_definition, publish_or_amend
from engine.rows import key_lock
from engine.schema import current, head, upgrade
from engine.store import AsyncStatements, Store, UnitOfWork
from engine.users import add_user, all_users, issue_token, revoke_tokens
from engine.views import CaseView, StoredResponse
from procedures import load_text
from tests.conftest import _reset_postgres, definition_text
from tests.engine.conftest import CALENDAR, Clock, applicant, local, office
from tests.engine.test_machine import SMALL
from tests.transacting import Transacting, change_signed_in_async

CODE = "T-1"
DAN = applicant("dan")
CB, KT, LD = office("cb"), office("kt"), office("ld")
ELSEWHERE = Actor("cb_u2", "u2", frozenset({"cb"}))


def body(version: int = 1, extra: str = "") -> str:
    return definition_text(SMALL + extra).replace("version: 1", f"version: {version}")


@pytest.fixture
def published(store: Store) -> Store:
    publish_definition(store, body(), now=local(2027, 1, 4, 8, 0))
    return store


def counts(store: Store) -> tuple[int, int, int]:
    with store.unit(write=False) as uow:
        s = uow.session
        return (
            s.scalar(select(func.count()).select_from(CaseRow)) or 0,
            s.scalar(select(func.count()).select_from(EventRow)) or 0,
            s.scalar(select(func.count()).select_from(CaseStepRow).where(CaseStepRow.status == "active")) or 0,
        )


def statuses(service: CaseService, case_id: int, actor: Any = DAN) -> dict[str, str]:
    return {s.id: s.status for s in service.get(actor, case_id).steps}


# -- schema ------------------------------------------------------------------------
def test_migrations_create_the_schema_the_models_describe(store: Store) -> None:
    assert current(store.engine) == head()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    s = Store(database_url)
    assert current(s.engine) is None
    assert upgrade(s.engine) == upgrade(s.engine) == head()
    s.dispose()


# -- procedures ----------------------------------------------------------------------
def test_publishing_the_same_body_twice_is_one_version_and_another_body_is_refused(store: Store) -> None:
    first = publish_definition(store, body())
    again = publish_definition(store, body())
    assert first.id == again.id
    with pytest.raises(Conflict, match="nội dung khác"):
        publish_definition(store, body() + "# changed\n")


def test_an_amendment_replaces_a_body_that_differs_only_in_what_no_case_depends_on(store: Store) -> None:
    first = publish_definition(store, body())
    relabelled = body() + "sector: Hộ tịch\n# sửa đổi nhãn\n"
    done = publish_or_amend(store, relabelled, source="sua.yaml")
    assert done.status == "amended" and done.row.id == first.id
    with store.unit(write=False) as uow:
        assert uow.procedure(CODE, 1).body == relabelled
        rows = uow.session.scalars(select(AmendmentRow)).all()
        assert [(r.procedure_id, r.old_body, r.source) for r in rows] == [(first.id, body(), "sua.yaml")]
    assert publish_or_amend(store, relabelled).status == "same"
    with pytest.raises(Conflict, match="nội dung khác"):
        publish_or_amend(store, relabelled.replace("time_limit: 5d", "time_limit: 9d"))


def test_a_version_or_user_stored_meanwhile_by_another_transaction_is_a_conflict(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each looks for the key first; a transaction that looked before another
    # one stored it (PostgreSQL lets both look at once) meets the unique
    # constraint instead, and that is the same Conflict, not a database error.
    defn = load_text(body(3))
    with store.unit() as uow:
        uow.add_procedure(defn, body(3), now=utcnow())
        add_user(uow, "lan", name="Lan", unit="u1")
    with monkeypatch.context() as looked_too_early:
        looked_too_early.setattr(UnitOfWork, "find_procedure", lambda self, code, version: None)
        with pytest.raises(Conflict, match="phiên bản 3 đã có"), store.unit() as uow:
            uow.add_procedure(defn, body(3), now=utcnow())
    with monkeypatch.context() as looked_too_early:
        looked_too_early.setattr(Session, "get", lambda self, *args, **kwargs: None)
        with pytest.raises(Conflict, match="người dùng «lan» đã có"), store.unit() as uow:
            add_user(uow, "lan", name="Lan", unit="u1")
    with store.unit(write=False) as uow:
        assert [r.version for r in uow.procedures()] == [3]
        assert [u.id for u in all_users(uow)] == ["lan"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_uploads_of_one_version_at_once_store_one_and_refuse_the_other(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # On SQLite both transactions look (nothing there) before either inserts.
    looked = threading.Barrier(2, timeout=10)
    find = UnitOfWork.find_procedure

    def find_then_wait(self: UnitOfWork, code: str, version: int) -> Any:
        found = find(self, code, version)
        looked.wait()
        return found

    if store.dialect == "sqlite":
        monkeypatch.setattr(UnitOfWork, "find_procedure", find_then_wait)
    # On PostgreSQL the code's lock (UnitOfWork.claim_code) makes the second
    # wait for the first and then see its version: the same two answers.
    defn = load_text(body(4))

    def upload() -> str:
        try:
            with store.unit() as uow:
                uow.add_procedure(defn, body(4), now=utcnow())
        except Conflict as exc:
            return str(exc)
        return "stored"

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(lambda _: upload(), range(2)))
    assert answers == ["stored", "thủ tục T-1 phiên bản 4 đã có"]


def test_a_code_with_no_published_version_starts_no_case(service: CaseService) -> None:
    with pytest.raises(NotPublished):
        service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})


def test_an_abolished_current_version_starts_no_case_but_running_cases_go_on(published: Store, service: CaseService) -> None:
    running = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    abolished = (
        f"format: tinhgon/1\ncode: {CODE}\nname: Bãi bỏ\nversion: 2\nabolished: Bãi bỏ theo quyết định thử\nmerged_into: T-9\n"
    )
    publish_definition(published, abolished, now=local(2027, 1, 5, 8, 0))
    with pytest.raises(Abolished) as refused:
        service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    assert refused.value.merged_into == "T-9" and "T-9" in refused.value.message
    case = service.act(DAN, running.id, step="nop", outcome="done")
    assert case.status == "open" and case.procedure_version == 1


# -- a whole case --------------------------------------------------------------------
def test_a_case_runs_to_completion_and_every_change_is_audited(published: Store, service: CaseService, clock: Clock) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    assert (case.version, case.status, case.procedure_version) == (1, "open", 1)
    assert case.due_at == local(2027, 3, 5, 17, 0)
    clock.advance(hours=1)
    case = service.act(DAN, case.id, step="nop", outcome="done", comment="Nộp đủ giấy tờ", if_match=1)
    assert case.version == 2
    case = service.act(CB, case.id, step="kiem_tra", outcome="dat")
    case = service.act(CB, case.id, step="xac_minh", outcome="done")
    case = service.act(KT, case.id, step="tinh_phi", outcome="done")
    case = service.act(LD, case.id, step="duyet", outcome="dong_y")
    assert case.status == "completed" and case.version == 6
    events = service.events(DAN, case.id)
    assert [(e.seq, e.type, e.step) for e in events] == [
        (1, "created", None),
        (2, "action", "nop"),
        (3, "action", "kiem_tra"),
        (4, "action", "xac_minh"),
        (5, "action", "tinh_phi"),
        (6, "action", "duyet"),
        (7, "system", "phat_hanh"),
    ]
    assert events[1].comment == "Nộp đủ giấy tờ" and events[1].actor == "dan"
    assert events[5].decision and events[5].signature is not None
    assert all(e.signature is not None and e.key_id == service.signer.key_id for e in events), "every event is signed"
    report = service.verify_audit()
    assert report.ok and report.events == 7


@pytest.fixture
def no_new_transactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Once ``forbid`` is called, any transaction opened on a store raises."""
    forbidden: list[str] = []
    for name in ("direct", "reading", "unit", "statements"):
        opened = getattr(Store, name)

        def guarded(self: Store, *args: Any, _name: str = name, _opened: Any = opened, **kwargs: Any) -> Any:
            if forbidden:
                raise AssertionError(f"the service opened a transaction of its own ({_name})")
            return _opened(self, *args, **kwargs)

        monkeypatch.setattr(Store, name, guarded)
    yield forbidden


def test_the_service_works_in_the_transactions_its_caller_gives(
    published: Store, signer: Signer, clock: Clock, no_new_transactions: list[str]
) -> None:
    service = CaseService(published, signer=signer, calendar=CALENDAR, clock=clock)
    with published.direct() as db, published.unit(write=False) as uow:
        no_new_transactions.append("forbid")
        case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}, db=db)
        assert service.may_start_for(CB, CODE, "u1", db=db)
        case = service.act(DAN, case.id, step="nop", outcome="done", db=db)
        assert [i.step for i in service.inbox(CB, db=db)[0]] == ["kiem_tra"]
        assert service.get(CB, case.id, db=db).version == 2
        assert [e.type for e in service.events(DAN, case.id, db=db)] == ["created", "action"]
        other = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}, db=db)
        assert service.withdraw(DAN, other.id, db=db).status == "withdrawn"  # type: ignore[union-attr]
        assert service.list_cases(DAN, uow=uow)[0] == []  # its own writes are not committed yet
        assert service.overdue(uow=uow) == []
        no_new_transactions.clear()
    assert counts(published)[0] == 2


def test_what_a_caller_puts_in_one_transaction_is_undone_together(published: Store, signer: Signer, clock: Clock) -> None:
    """The caller decides what one transaction holds: a start and an action
    in one, and a refusal after them, leave nothing behind."""
    service = CaseService(published, signer=signer, calendar=CALENDAR, clock=clock)
    before = counts(published)
    with pytest.raises(InvalidAction), published.direct() as db:
        case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}, db=db)
        service.act(DAN, case.id, step="nop", outcome="done", db=db)
        service.act(CB, case.id, step="kiem_tra", outcome="khong_co", db=db)
    assert counts(published) == before
    assert service.verify_audit().ok


def test_steps_and_due_times_survive_the_database(published: Store, service: CaseService, clock: Clock) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    clock.now = local(2027, 3, 1, 11, 0)
    case = service.act(DAN, case.id, step="nop", outcome="done")
    review = next(s for s in case.steps if s.id == "kiem_tra")
    assert review.status == "active" and review.activated_at == local(2027, 3, 1, 11, 0)
    assert review.due_at == local(2027, 3, 1, 16, 0)
    again = service.get(CB, case.id)
    assert again == case


def test_the_clock_pause_is_persisted(published: Store, service: CaseService, clock: Clock) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    clock.now = local(2027, 3, 1, 10, 0)
    case = service.act(CB, case.id, step="kiem_tra", outcome="bo_sung", missing=["don"])
    assert case.paused and case.guided is not None and case.guided.missing == ("don",)
    clock.now = local(2027, 3, 2, 15, 0)
    case = service.act(DAN, case.id, step="nop", outcome="done", data={"urgent": True})
    assert not case.paused
    assert case.due_at == local(2027, 3, 9, 12, 0)
    assert case.data == {"kind": "a", "urgent": True}
    types = [e.type for e in service.events(DAN, case.id)]
    assert types == ["created", "action", "action", "data", "action"]


def test_guide_once_is_refused_by_the_service_and_changes_nothing(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    service.act(CB, case.id, step="kiem_tra", outcome="bo_sung")
    service.act(DAN, case.id, step="nop", outcome="done")
    before = counts(published), service.get(DAN, case.id)
    with pytest.raises(GuideOnce) as caught:
        service.act(CB, case.id, step="kiem_tra", outcome="bo_sung")
    assert caught.value.case_id == case.id and caught.value.earlier.outcome == "bo_sung"
    assert (counts(published), service.get(DAN, case.id)) == before


@pytest.mark.parametrize(
    ("actor", "step", "outcome", "error"),
    [
        (CB, "khong_co", "done", InvalidAction),
        (CB, "kiem_tra", "khong_co", InvalidAction),
        (KT, "nop", "done", Forbidden),  # sees the case (kt is an office role of it), not the applicant
        (office("cb", "u1", "kt"), "kiem_tra", "dat", StepNotActive),
    ],
)
def test_refused_actions_change_nothing(
    published: Store, service: CaseService, actor: Any, step: str, outcome: str, error: type[Exception]
) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    before = counts(published), service.get(DAN, case.id), service.events(DAN, case.id)
    with pytest.raises(error):
        service.act(actor, case.id, step=step, outcome=outcome)
    assert (counts(published), service.get(DAN, case.id), service.events(DAN, case.id)) == before


def test_invalid_data_creates_no_case(published: Store, service: CaseService) -> None:
    with pytest.raises(InvalidData) as caught:
        service.start(DAN, code=CODE, unit="u1", data={"kind": "z", "age": "x"})
    assert {p.field for p in caught.value.problems} == {"kind", "age"}
    assert counts(published) == (0, 0, 0)


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["NUL", "lone surrogate"])
def test_unstorable_text_is_refused_in_data_and_comments_and_nothing_is_written(
    store: Store, service: CaseService, bad: str
) -> None:
    """PostgreSQL stores no NUL, in text or in JSON it reads back (an
    amendment's event had failed inside the write), and a lone surrogate
    (JSON's "\\ud800") has no UTF-8 for either database: the engine refuses
    both on every database, as the field's problem or the action's."""
    publish_definition(
        store,
        definition_text(
            SMALL.replace("  - {id: age, type: integer}\n", "  - {id: age, type: integer}\n  - {id: ten, type: string}\n")
        ),
        now=local(2027, 1, 4, 8, 0),
    )
    with pytest.raises(InvalidData) as caught:
        service.start(DAN, code=CODE, unit="u1", data={"kind": "a", "ten": f"Lan{bad}"})
    assert [(p.field, p.message, p.kind) for p in caught.value.problems] == [("ten", nul_text(), "unstorable")]
    with pytest.raises(InvalidData) as caught:
        service.start(DAN, code=CODE, unit="u1", data={"kind": "a", f"t{bad}": 1})
    assert [(p.field, p.kind) for p in caught.value.problems] == [("(data)", "unstorable")]
    assert caught.value.problems[0].message == "tên trường không được chứa ký tự NUL (mã 0) hoặc mã surrogate đứng lẻ"
    assert counts(store) == (0, 0, 0)
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a", "ten": "Lan"})
    before = counts(store), service.get(DAN, case.id), service.events(DAN, case.id)
    with pytest.raises(InvalidData):
        service.act(DAN, case.id, step="nop", outcome="done", data={"ten": bad})
    with pytest.raises(InvalidAction, match="ý kiến không được chứa ký tự NUL"):
        service.act(DAN, case.id, step="nop", outcome="done", comment=f"a{bad}b")
    with pytest.raises(InvalidAction, match="ý kiến không được chứa ký tự NUL"):
        service.withdraw(DAN, case.id, comment=bad)
    assert (counts(store), service.get(DAN, case.id), service.events(DAN, case.id)) == before
    done = service.act(DAN, case.id, step="nop", outcome="done", data={"ten": "Lan Anh"}, comment="đủ")
    assert done.version == 2 and done.data["ten"] == "Lan Anh"


def test_a_comment_over_the_limit_is_refused_and_nothing_is_written(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    before = counts(published), service.get(DAN, case.id)
    with pytest.raises(CommentTooLong, match="ý kiến dài 4001 ký tự; tối đa 4000 ký tự"):
        service.act(DAN, case.id, step="nop", outcome="done", comment="x" * (COMMENT_LENGTH + 1))
    with pytest.raises(CommentTooLong):
        service.withdraw(DAN, case.id, comment="x" * (COMMENT_LENGTH + 1))
    assert (counts(published), service.get(DAN, case.id)) == before
    assert service.act(DAN, case.id, step="nop", outcome="done", comment="x" * COMMENT_LENGTH).version == 2


def test_a_case_outside_the_callers_reach_is_not_found(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    for stranger in (office("cb", "u2"), applicant("other"), office("khac")):
        with pytest.raises(NotFound):
            service.get(stranger, case.id)
        with pytest.raises(NotFound):
            service.act(stranger, case.id, step="nop", outcome="done")
        with pytest.raises(NotFound):
            service.events(stranger, case.id)
    with pytest.raises(NotFound):
        service.get(DAN, 999_999)
    admin = applicant("root")
    admin = type(admin)("root", "hq", frozenset(), frozenset({"admin"}))
    assert service.get(admin, case.id).id == case.id  # admin reads every case
    with pytest.raises(Forbidden):
        service.act(admin, case.id, step="nop", outcome="done")  # but acts on nothing


def test_withdraw_and_then_nothing_more(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    with pytest.raises(Forbidden):
        service.withdraw(CB, case.id)
    case = service.withdraw(DAN, case.id, comment="Rút hồ sơ")
    assert case.status == "withdrawn" and {s.status for s in case.steps} == {"cancelled"}
    with pytest.raises(CaseClosed):
        service.withdraw(DAN, case.id)
    with pytest.raises(CaseClosed):
        service.act(DAN, case.id, step="nop", outcome="done")
    assert service.events(DAN, case.id)[-1].type == "withdrawn"


def test_running_cases_stay_on_their_version_when_a_newer_one_is_published(published: Store, service: CaseService) -> None:
    old = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    newer = body(2).replace(
        "{id: nop, name: Nộp đơn, role: dan, kind: submit, duration: 1h, inputs: [don]}",
        "{id: nop, name: Nộp đơn trực tuyến, role: dan, kind: submit, duration: 30m, inputs: [don]}",
    )
    publish_definition(published, newer)
    new = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    assert (old.procedure_version, new.procedure_version) == (1, 2)
    old = service.act(DAN, old.id, step="nop", outcome="done")
    assert old.procedure_version == 1 and old.steps[0].name == "Nộp đơn"
    assert service.get(DAN, new.id).steps[0].name == "Nộp đơn trực tuyến"


# -- inbox and deadlines --------------------------------------------------------------
def test_the_inbox_lists_actionable_steps_earliest_due_first_in_pages(
    published: Store, service: CaseService, clock: Clock
) -> None:
    ids = []
    for hour in (8, 9, 10):
        clock.now = local(2027, 3, 1, hour, 0)
        ids.append(service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}).id)
    other_unit = service.start(DAN, code=CODE, unit="u2", data={"kind": "a"})
    for hour, case_id in zip((10, 11, 13), reversed(ids), strict=True):
        clock.now = local(2027, 3, 1, hour, 0)
        service.act(DAN, case_id, step="nop", outcome="done")
    service.act(DAN, other_unit.id, step="nop", outcome="done")
    items, cursor = service.inbox(CB, limit=2)
    assert [i.case_id for i in items] == [ids[2], ids[1]]  # the review activated first is due first
    rest, end = service.inbox(CB, limit=2, cursor=cursor)
    assert [i.case_id for i in rest] == [ids[0]] and end is None
    assert all(i.step == "kiem_tra" and i.step_name == "Kiểm tra" for i in items + rest)
    assert service.inbox(office("cb", "u2"), limit=10)[0][0].case_id == other_unit.id
    mine, _ = service.inbox(DAN)
    assert mine == []  # the applicant has nothing to do now


def test_the_inbox_puts_steps_without_due_time_last_and_marks_overdue(
    published: Store, service: CaseService, clock: Clock
) -> None:
    a = service.start(DAN, code=CODE, unit="u1", data={"kind": "a", "urgent": True})
    service.act(DAN, a.id, step="nop", outcome="done")
    service.act(CB, a.id, step="kiem_tra", outcome="dat")
    clock.advance(days=30)
    items, _ = service.inbox(KT)
    assert [i.step for i in items] == ["tinh_phi", "gap"]  # gap has duration 0: no due time
    assert items[0].overdue and not items[1].overdue and items[1].due_at is None
    overdue = service.overdue()
    assert {(c, s) for c, s, _ in overdue} == {(a.id, "xac_minh"), (a.id, "tinh_phi")}


def test_a_bad_inbox_cursor_is_refused(published: Store, service: CaseService) -> None:
    with pytest.raises(ValueError, match="cursor"):
        service.inbox(CB, cursor="bm90IGEgY3Vyc29y")
    with pytest.raises(ValueError, match="cursor"):
        service.inbox(CB, cursor="1.2.3\n")


# -- optimistic concurrency --------------------------------------------------------------
def test_a_stale_if_match_is_refused_and_changes_nothing(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done", if_match=1)
    before = counts(published)
    with pytest.raises(StaleCase) as caught:
        service.act(CB, case.id, step="kiem_tra", outcome="dat", if_match=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert counts(published) == before


def test_two_officials_on_one_stale_view_never_both_succeed(published: Store, signer: Signer, clock: Clock) -> None:
    """Two services (two workers) act on parallel steps of one case, each on
    the version it read; the database decides, and only one commits."""
    a = Transacting(published, signer=signer, calendar=CALENDAR, clock=clock)
    b = Transacting(Store(published.url), signer=signer, calendar=CALENDAR, clock=clock)
    case = a.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    a.act(DAN, case.id, step="nop", outcome="done")
    seen = a.act(CB, case.id, step="kiem_tra", outcome="dat").version
    a.act(CB, case.id, step="xac_minh", outcome="done", if_match=seen)
    with pytest.raises(StaleCase):
        b.act(KT, case.id, step="tinh_phi", outcome="done", if_match=seen)
    # without If-Match the second action is re-checked on the fresh state and applies
    assert b.act(KT, case.id, step="tinh_phi", outcome="done").version == seen + 2
    b.store.dispose()


def _answer(view: Any) -> tuple[int, str]:
    return 200, f'{{"version": {view.version}}}'


def test_an_action_is_one_read_and_one_write_on_postgresql(published: Store, service: CaseService) -> None:
    """PostgreSQL: the case with its steps and the key's claim in one
    statement, the whole change in another (BEGIN and COMMIT aside); SQLite
    runs one statement per part, which costs it no round trips."""
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    sent: list[str] = []
    published.trace = lambda sql, _parameters: sent.append(sql.split()[0])
    service.act(DAN, case.id, step="nop", outcome="done", idempotency=Idempotency("k1", "h1", _answer))
    keyed = list(sent)
    sent.clear()
    service.act(CB, case.id, step="kiem_tra", outcome="dat")  # fans out to two parallel steps
    published.trace = None
    if published.dialect == "postgresql":
        assert keyed == ["WITH", "WITH"] and sent == ["SELECT", "WITH"]
    else:
        assert keyed == ["SELECT", "INSERT", "SELECT", "UPDATE", "UPDATE", "UPDATE", "INSERT", "UPDATE"]
    # either way the same change is stored, and the key's answer with it
    now = statuses(service, case.id)
    assert [now[s] for s in ("nop", "kiem_tra", "xac_minh", "tinh_phi")] == ["completed", "completed", "active", "active"]
    again = service.act(DAN, case.id, step="nop", outcome="done", idempotency=Idempotency("k1", "h1", _answer))
    assert (again.status_code, again.body) == (200, {"version": 2})
    assert [e.step for e in service.events(DAN, case.id)] == [None, "nop", "kiem_tra"]
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_a_change_worked_out_ahead_is_written_as_act_writes_it(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    with published.direct(write=False) as db:
        ahead = service.prepare(DAN, case.id, service.acting(DAN, step="nop", outcome="done", comment="Nộp"), db=db)
    before = counts(published)
    with published.direct() as db:
        view = service.commit(db, ahead)
    assert isinstance(view, CaseView) and view.version == 2
    assert statuses(service, case.id)["nop"] == "completed"
    assert counts(published)[1] == before[1] + 1
    assert [e.comment for e in service.events(DAN, case.id)][-1] == "Nộp"
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_a_case_that_moved_on_after_its_change_was_worked_out_is_changed_afresh(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    seen = service.act(CB, case.id, step="kiem_tra", outcome="dat").version
    with published.direct(write=False) as db:
        loose = service.prepare(CB, case.id, service.acting(CB, step="xac_minh", outcome="done"), db=db)
        strict = service.prepare(CB, case.id, service.acting(CB, step="xac_minh", outcome="done"), if_match=seen, db=db)
    service.act(KT, case.id, step="tinh_phi", outcome="done")  # meanwhile
    with pytest.raises(StaleCase), published.direct() as db:
        service.commit(db, strict)
    with published.direct() as db:
        view = service.commit(db, loose)
    assert isinstance(view, CaseView) and view.version == seen + 2
    steps = [e.step for e in service.events(DAN, case.id)]
    assert steps.count("xac_minh") == 1 and steps.count("tinh_phi") == 1
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_a_repeat_refused_ahead_still_gets_the_first_answer(published: Store, service: CaseService) -> None:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done", idempotency=Idempotency("k3", "h3", _answer))
    with published.direct(write=False) as db:
        with pytest.raises(StepNotActive):  # no key: refused ahead, at once
            service.prepare(DAN, case.id, service.acting(DAN, step="nop", outcome="done"), db=db)
        again = service.prepare(
            DAN, case.id, service.acting(DAN, step="nop", outcome="done"), idempotency=Idempotency("k3", "h3", _answer), db=db
        )
    assert again.plan is None  # refused ahead, left to the writing transaction, which has the key
    with published.direct() as db:
        answer = service.commit(db, again)
    assert isinstance(answer, StoredResponse) and (answer.status_code, answer.body) == (200, {"version": 2})


@pytest.fixture
def pg_published(postgres_server: str, signer: Signer) -> Iterator[Store]:
    """A migrated PostgreSQL database with the procedure published."""
    _reset_postgres(postgres_server)
    store = Store(postgres_server)
    store.signer = signer
    upgrade(store.engine)
    publish_definition(store, body(), now=local(2027, 1, 4, 8, 0))
    yield store
    store.dispose()


def test_a_change_that_lost_the_race_writes_nothing(
    pg_published: Store, signer: Signer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction changes the case between this action's read and
    its write: the write (on PostgreSQL one statement, each part of it
    conditioned on the guarded case update) leaves no step, event or
    idempotency answer behind, and the action is refused as stale."""
    published = pg_published  # on SQLite writers go one at a time: no other transaction can come between
    mine = Transacting(published, signer=signer, calendar=CALENDAR, clock=clock)
    other_store = Store(published.url)
    other = Transacting(other_store, signer=signer, calendar=CALENDAR, clock=clock)
    case = mine.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    mine.act(DAN, case.id, step="nop", outcome="done")
    seen = mine.act(CB, case.id, step="kiem_tra", outcome="dat").version
    act = CompiledProcedure.act
    interloped: list[int] = []

    def interloping_act(machine: CompiledProcedure, state: Any, **kwargs: Any) -> Any:
        if not interloped:  # once, after this action has read the case: another worker commits first
            interloped.append(0)
            interloped[0] = other.act(KT, case.id, step="tinh_phi", outcome="done").version
        return act(machine, state, **kwargs)

    monkeypatch.setattr(CompiledProcedure, "act", interloping_act)
    before = counts(published)
    with pytest.raises(StaleCase):
        mine.act(CB, case.id, step="xac_minh", outcome="done", if_match=seen, idempotency=Idempotency("k2", "h2", _answer))
    monkeypatch.undo()
    other_store.dispose()
    assert interloped == [seen + 1]
    assert statuses(mine, case.id)["xac_minh"] == "active"
    assert [e.step for e in mine.events(DAN, case.id)][-1] == "tinh_phi"
    assert counts(published) == (before[0], before[1] + 1, before[2] - 1)  # the other action's event and step only
    with published.unit(write=False) as uow:
        assert uow.session.get(IdempotencyRow, (CB.id, "k2")) is None  # the claim went with the rest
    assert mine.verify_audit().ok


class OnTheLoop(Transacting):
    """A service whose signed-in changes run on an event loop (as the API's
    workers run them), through :meth:`CaseService.change_signed_in_async`."""

    def change_signed_in(self, token: str, case_id: int, change: Any, **options: Any) -> Any:
        async def run() -> Any:
            statements = AsyncStatements(self.store, 2)
            await statements.open()
            try:
                return await change_signed_in_async(self, statements, token, case_id, change, **options)
            finally:
                await statements.close()

        return asyncio.run(run())


@pytest.fixture(params=[Transacting, OnTheLoop], ids=["threaded", "on-the-loop"])
def signed_in(
    request: pytest.FixtureRequest, pg_published: Store, signer: Signer, clock: Clock
) -> tuple[CaseService, dict[str, str]]:
    """PostgreSQL, with a service (its signed-in changes run in the calling
    thread, or on an event loop) and a bearer token for each of dan, cb_cb,
    cb_kt and an official of another unit."""
    return request.param(pg_published, signer=signer, calendar=CALENDAR, clock=clock), _users(pg_published)


def _users(store: Store) -> dict[str, str]:
    """A bearer token for each of dan, cb_cb, cb_kt, an official of another
    unit, and a revoked one (``gone``)."""
    tokens = {}
    with store.unit() as uow:
        for actor in (DAN, CB, KT, ELSEWHERE):
            add_user(uow, actor.id, name=actor.id, unit=actor.unit, roles=sorted(actor.roles))
            tokens[actor.id] = issue_token(uow, actor.id)
        revoked = add_user(uow, "gone", name="gone", unit="u1", roles=["cb"])
        tokens["gone"] = issue_token(uow, revoked.id)
        revoke_tokens(uow, revoked.id)
    return tokens


def _sign_in_and_act(
    service: CaseService, token: str, case_id: int, step: str, outcome: str, **options: Any
) -> tuple[Any, CaseView | StoredResponse] | None:
    return service.change_signed_in(token, case_id, lambda actor: service.acting(actor, step=step, outcome=outcome), **options)


def _traced(store: Store) -> list[str]:
    sent: list[str] = []
    store.trace = lambda sql, _parameters: sent.append(sql.split()[0])
    return sent


def test_a_signed_in_change_is_two_statements_each_its_own_transaction(signed_in: tuple[CaseService, dict[str, str]]) -> None:
    """PostgreSQL: the token, the case and the key in one read, the change,
    answer and key in one write, in autocommit (no BEGIN or COMMIT); a
    repeat is answered by the read alone."""
    service, tokens = signed_in
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    sent = _traced(service.store)
    done = _sign_in_and_act(service, tokens[DAN.id], case.id, "nop", "done", idempotency=Idempotency("k1", "h1", _answer))
    assert done is not None and done[0].id == DAN.id
    assert isinstance(done[1], CaseView) and done[1].version == 2
    assert sent == ["SELECT", "WITH"]
    sent.clear()
    again = _sign_in_and_act(service, tokens[DAN.id], case.id, "nop", "done", idempotency=Idempotency("k1", "h1", _answer))
    assert again is not None and isinstance(again[1], StoredResponse) and again[1].body == {"version": 2}
    assert sent == ["SELECT"]
    sent.clear()
    fanned = _sign_in_and_act(service, tokens[CB.id], case.id, "kiem_tra", "dat", if_match=2)  # no key; two steps start
    service.store.trace = None
    assert fanned is not None and isinstance(fanned[1], CaseView) and fanned[1].version == 3
    assert sent == ["SELECT", "WITH"]
    assert [statuses(service, case.id)[s] for s in ("kiem_tra", "xac_minh", "tinh_phi")] == ["completed", "active", "active"]
    assert [e.step for e in service.events(DAN, case.id)] == [None, "nop", "kiem_tra"]
    report = service.verify_audit()
    assert report.ok, report.first_bad
    with service.store.engine.connect() as conn:  # the pool got its connections back out of autocommit
        assert conn.connection.driver_connection.autocommit is False


def test_on_the_loop_a_procedure_not_compiled_yet_is_compiled_in_a_thread(
    pg_published: Store, signer: Signer, clock: Clock
) -> None:
    """A worker's first action on a procedure version compiles it (tens of
    milliseconds) in the transaction's thread (one of the threads the
    caller gives), not on the event loop; the next is the two statements
    on the loop."""
    service, tokens = Transacting(pg_published, signer=signer, calendar=CALENDAR, clock=clock), _users(pg_published)
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    fresh = OnTheLoop(service.store, signer=signer, calendar=CALENDAR, clock=clock)
    threads = ThreadPoolExecutor(2, thread_name_prefix="transactions")
    with service.store.unit() as uow:
        procedure_id = uow.session.get(CaseRow, case.id).procedure_id
    assert fresh.compiled.ready(procedure_id) is None
    compiled_in = []
    get = fresh.compiled.get

    def recording(row: Any) -> Any:
        compiled_in.append(threading.current_thread())
        return get(row)

    fresh.compiled.get = recording  # type: ignore[method-assign]
    sent = _traced(service.store)
    done = _sign_in_and_act(fresh, tokens[DAN.id], case.id, "nop", "done", if_match=1, executor=threads)
    threads.shutdown()
    assert done is not None and isinstance(done[1], CaseView) and done[1].version == 2
    assert compiled_in and all(t.name.startswith("transactions") for t in compiled_in)  # the caller's threads
    assert fresh.compiled.ready(procedure_id) is not None
    assert len(sent) > 2  # the read, then the transaction
    sent.clear()
    fanned = _sign_in_and_act(fresh, tokens[CB.id], case.id, "kiem_tra", "dat", if_match=2)
    service.store.trace = None
    assert fanned is not None and isinstance(fanned[1], CaseView) and fanned[1].version == 3
    assert sent == ["SELECT", "WITH"]
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_a_signed_in_change_checks_the_token_then_the_case(signed_in: tuple[CaseService, dict[str, str]]) -> None:
    service, tokens = signed_in
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    sent = _traced(service.store)
    assert _sign_in_and_act(service, "not-a-token", case.id, "nop", "done") is None
    assert sent == []  # not ours: the database is not asked
    assert _sign_in_and_act(service, "tg_" + "x" * 43, case.id, "nop", "done") is None
    assert _sign_in_and_act(service, tokens["gone"], case.id, "nop", "done") is None
    assert _sign_in_and_act(service, tokens["gone"], 10**6, "nop", "done") is None  # 401 before 404
    service.store.trace = None
    for token, case_id in ((tokens["cb_cb"], 10**6), (tokens[ELSEWHERE.id], case.id)):
        with pytest.raises(NotFound):
            _sign_in_and_act(service, token, case_id, "nop", "done", idempotency=Idempotency("k0", "h0", _answer))
    with pytest.raises(Forbidden):
        _sign_in_and_act(service, tokens[CB.id], case.id, "nop", "done")
    with pytest.raises(StaleCase):
        _sign_in_and_act(service, tokens[DAN.id], case.id, "nop", "done", if_match=7)
    with service.store.unit(write=False) as uow:
        assert uow.session.scalar(select(func.count()).select_from(IdempotencyRow)) == 0
    assert statuses(service, case.id)["nop"] == "active"


def _meanwhile(monkeypatch: pytest.MonkeyPatch, work: Any) -> None:
    """Run ``work()`` once, after the next change has read its case and before its write."""
    act = CompiledProcedure.act
    pending = [work]

    def acting(machine: CompiledProcedure, state: Any, **kwargs: Any) -> Any:
        if pending:
            pending.pop()()
        return act(machine, state, **kwargs)

    monkeypatch.setattr(CompiledProcedure, "act", acting)


def test_a_signed_in_change_whose_case_moved_on_is_made_again_in_a_transaction(
    signed_in: tuple[CaseService, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, tokens = signed_in
    other = Store(service.store.url)
    rival = Transacting(other, signer=service.signer, calendar=CALENDAR, clock=service.clock)
    cases = [service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}).id for _ in range(3)]
    seen = []
    for case_id in cases[:2]:
        service.act(DAN, case_id, step="nop", outcome="done")
        seen.append(service.act(CB, case_id, step="kiem_tra", outcome="dat").version)
    try:
        # with If-Match: refused as stale, and nothing of it written
        _meanwhile(monkeypatch, lambda: rival.act(KT, cases[0], step="tinh_phi", outcome="done"))
        with pytest.raises(StaleCase):
            _sign_in_and_act(
                service,
                tokens[CB.id],
                cases[0],
                "xac_minh",
                "done",
                if_match=seen[0],
                idempotency=Idempotency("k4", "h4", _answer),
            )
        assert statuses(service, cases[0])["xac_minh"] == "active"
        with service.store.unit(write=False) as uow:
            assert uow.session.get(IdempotencyRow, (CB.id, "k4")) is None

        # without: applied to the case as it now is, the answer stored under the key
        _meanwhile(monkeypatch, lambda: rival.act(KT, cases[1], step="tinh_phi", outcome="done"))
        done = _sign_in_and_act(
            service, tokens[CB.id], cases[1], "xac_minh", "done", idempotency=Idempotency("k5", "h5", _answer)
        )
        assert done is not None and isinstance(done[1], CaseView) and done[1].version == seen[1] + 2
        assert statuses(service, cases[1])["xac_minh"] == "completed"
        replay = _sign_in_and_act(
            service, tokens[CB.id], cases[1], "xac_minh", "done", idempotency=Idempotency("k5", "h5", _answer)
        )
        assert replay is not None and isinstance(replay[1], StoredResponse) and replay[1].body == {"version": seen[1] + 2}

        # and refused when the case as it now is refuses it
        _meanwhile(monkeypatch, lambda: rival.act(DAN, cases[2], step="nop", outcome="done"))
        with pytest.raises(StepNotActive):
            _sign_in_and_act(service, tokens[DAN.id], cases[2], "nop", "done")
    finally:
        monkeypatch.undo()
        other.dispose()
    for case_id in cases:
        steps = [e.step for e in service.events(DAN, case_id)]
        assert all(steps.count(s) <= 1 for s in ("nop", "xac_minh", "tinh_phi")), steps
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_a_key_used_meanwhile_is_answered_as_a_transaction_answers_it(
    signed_in: tuple[CaseService, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key stored by another request between the read and the write (the
    write fails on the key and writes nothing), or claimed by one still in
    flight (its advisory lock: the write changes nothing): the change is
    made again in a transaction that claims the key first."""
    service, tokens = signed_in
    other = Store(service.store.url)
    rival = Transacting(other, signer=service.signer, calendar=CALENDAR, clock=service.clock)
    mine, theirs = (service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}).id for _ in range(2))
    try:
        # stored meanwhile for another request: a mismatch
        _meanwhile(
            monkeypatch,
            lambda: rival.act(DAN, theirs, step="nop", outcome="done", idempotency=Idempotency("k6", "h-other", _answer)),
        )
        with pytest.raises(IdempotencyMismatch):
            _sign_in_and_act(service, tokens[DAN.id], mine, "nop", "done", idempotency=Idempotency("k6", "h6", _answer))
        # stored meanwhile for this very request (a retry that overtook it): its answer
        _meanwhile(
            monkeypatch, lambda: rival.act(DAN, mine, step="nop", outcome="done", idempotency=Idempotency("k7", "h7", _answer))
        )
        first = _sign_in_and_act(service, tokens[DAN.id], mine, "nop", "done", idempotency=Idempotency("k7", "h7", _answer))
        assert first is not None and isinstance(first[1], StoredResponse) and first[1].body == {"version": 2}
        # claimed by a request in flight, which holds the key's lock
        with other.engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": key_lock(CB.id, "k8")})
            with pytest.raises(IdempotencyInFlight):
                _sign_in_and_act(service, tokens[CB.id], mine, "kiem_tra", "dat", idempotency=Idempotency("k8", "h8", _answer))
            holder.rollback()
    finally:
        monkeypatch.undo()
        other.dispose()
    assert [e.step for e in service.events(DAN, mine)] == [None, "nop"]
    assert [e.step for e in service.events(DAN, theirs)] == [None, "nop"]
    assert statuses(service, mine)["kiem_tra"] == "active"
    with service.store.unit(write=False) as uow:
        assert uow.session.get(IdempotencyRow, (CB.id, "k8")) is None
    report = service.verify_audit()
    assert report.ok, report.first_bad


def _race(store: Store, signer: Signer, workers: int, cases: int, rounds: int) -> None:
    service = Transacting(store, signer=signer, calendar=CALENDAR)
    ids = [service.start(DAN, code=CODE, unit="u1", data={"kind": "a"}).id for _ in range(cases)]
    for case_id in ids:
        service.act(DAN, case_id, step="nop", outcome="done")
        service.act(CB, case_id, step="kiem_tra", outcome="dat")
    roles = {"xac_minh": CB, "tinh_phi": KT, "duyet": LD}
    accepted: list[tuple[int, str, int]] = []
    refused: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(workers)

    def work(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        for _ in range(rounds):
            case_id = rng.choice(ids)
            step = rng.choice(list(roles))
            try:
                seen = service.get(roles[step], case_id).version if rng.random() < 0.5 else None
                view = service.act(
                    roles[step], case_id, step=step, outcome="dong_y" if step == "duyet" else "done", if_match=seen
                )
                with lock:
                    accepted.append((case_id, step, view.version))
            except (StaleCase, StepNotActive, CaseClosed) as exc:
                with lock:
                    refused[type(exc).__name__] += 1
            except BaseException as exc:  # anything else is a failure of the engine
                with lock:
                    unexpected.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    assert refused  # the race did happen
    # every accepted action is recorded exactly once, and nothing else is
    with store.unit(write=False) as uow:
        recorded = Counter(
            (e.case_id, e.step)
            for e in uow.session.scalars(select(EventRow).where(EventRow.type == "action", EventRow.step.in_(list(roles))))
        )
        versions = {c.id: c.version for c in uow.session.scalars(select(CaseRow))}
    assert recorded == Counter((c, s) for c, s, _ in accepted)
    assert all(v == 1 for v in recorded.values())  # each step is done once per case (no returns taken)
    for case_id in ids:
        mine = sorted(v for c, _, v in accepted if c == case_id)
        assert mine == list(range(4, 4 + len(mine)))  # versions handed out once each, in order
        assert versions[case_id] == 3 + len(mine)
    report = service.verify_audit()
    assert report.ok, report.first_bad


def test_eight_workers_race_on_shared_cases(published: Store, signer: Signer) -> None:
    _race(published, signer, workers=8, cases=6, rounds=25)


# -- tampering ------------------------------------------------------------------------
@pytest.fixture
def audited(published: Store, service: CaseService) -> tuple[CaseService, int]:
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    service.act(CB, case.id, step="kiem_tra", outcome="dat", comment="Hồ sơ hợp lệ")
    service.act(CB, case.id, step="xac_minh", outcome="done")
    service.act(KT, case.id, step="tinh_phi", outcome="done")
    service.act(LD, case.id, step="duyet", outcome="dong_y")
    report = service.verify_audit()
    assert report.ok, report.first_bad
    return service, case.id


@pytest.mark.parametrize(
    ("sql", "seq", "reason"),
    [
        ("UPDATE events SET comment = 'Hồ sơ không hợp lệ' WHERE case_id = :c AND seq = 3", 3, "mã băm không khớp"),
        ("UPDATE events SET actor = 'someone' WHERE case_id = :c AND seq = 2", 2, "mã băm không khớp"),
        ("UPDATE events SET outcome = 'khac' WHERE case_id = :c AND seq = 6", 6, "mã băm không khớp"),
        ("UPDATE events SET signature = NULL WHERE case_id = :c AND seq = 6", 6, "thiếu chữ ký"),
        ("DELETE FROM events WHERE case_id = :c AND seq = 4", 4, "thiếu sự kiện"),
        ("DELETE FROM events WHERE case_id = :c AND seq = 7", 7, "các sự kiện cuối bị xóa"),
        ("UPDATE events SET seq = seq + 100 WHERE case_id = :c AND seq IN (3, 4)", 3, "thiếu sự kiện"),
    ],
)
def test_tampering_with_event_rows_is_caught(audited: tuple[CaseService, int], sql: str, seq: int, reason: str) -> None:
    service, case_id = audited
    with service.store.engine.begin() as conn:
        conn.execute(text(sql), {"c": case_id})
    report = service.verify_audit()
    assert not report.ok
    assert report.first_bad is not None
    assert (report.first_bad.case_id, report.first_bad.seq) == (case_id, seq)
    assert reason in report.first_bad.reason


def test_reordering_two_events_is_caught(audited: tuple[CaseService, int]) -> None:
    service, case_id = audited
    with service.store.engine.begin() as conn:
        conn.execute(text("UPDATE events SET seq = -1 WHERE case_id = :c AND seq = 3"), {"c": case_id})
        conn.execute(text("UPDATE events SET seq = 3 WHERE case_id = :c AND seq = 4"), {"c": case_id})
        conn.execute(text("UPDATE events SET seq = 4 WHERE case_id = :c AND seq = -1"), {"c": case_id})
    bad = service.verify_audit().first_bad
    assert bad is not None and (bad.case_id, bad.seq) == (case_id, 3) and "prev_hash" in bad.reason


def test_editing_case_data_inside_an_event_is_caught(audited: tuple[CaseService, int]) -> None:
    service, case_id = audited
    with service.store.unit() as uow:
        row = uow.session.scalars(select(EventRow).where(EventRow.case_id == case_id, EventRow.seq == 1)).one()
        row.data = {**row.data, "data": {"kind": "b"}}
    bad = service.verify_audit().first_bad
    assert bad is not None and bad.seq == 1


def test_a_chain_verifies_only_with_the_servers_key(audited: tuple[CaseService, int]) -> None:
    service, _ = audited
    assert not service.verify_audit(Signer.generate().verifier()).ok
