"""Rewrites made with write access to the database but without the signing
key, each as an attacker would make it (hashes recomputed, heads fixed),
and each reported by the audit's verification: on SQLite and PostgreSQL.

The attacks are those of issue 17, item 1. ``verify_database`` must name
the first bad item; a rewrite the tables alone cannot show (a cut ledger
tail) is caught against a checkpoint kept elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from engine.audit import GENESIS, EventRecord, compute_hash
from engine.cases import CaseService
from engine.db import CaseRow, EventRow, LedgerRow, UserRow
from engine.keys import Keyring, Signer, rotate
from engine.ledger import checkpoint, head
from engine.store import Store
from engine.users import add_user
from engine.verify import AuditReport, seal_all, verify_database
from procedures.messages import speaking
from tests.engine.test_cases import CB, CODE, DAN, audited, published  # noqa: F401 (fixtures)
from tests.transacting import Transacting

pytestmark = pytest.mark.usefixtures("english")  # the findings are checked in their English wording


def verify(service: CaseService, **options: Any) -> AuditReport:
    return verify_database(service.store, Keyring([service.signer.verifier()]), calendar=service.calendar, **options)


@pytest.fixture
def decided(service: CaseService, request: pytest.FixtureRequest) -> tuple[CaseService, int]:
    """One case decided (signed: test_cases' ``audited``), another open, a user; every change sealed."""
    _, case_id = request.getfixturevalue("audited")  # on the same database as service
    other = service.start(DAN, code=CODE, unit="u1", data={"kind": "b"})
    service.act(DAN, other.id, step="nop", outcome="done")
    with service.store.unit() as uow:
        add_user(uow, "lan", name="Lan", unit="u1", roles=["cb"])
    seal_all(service.store, service.signer)
    report = verify(service)
    assert report.ok, report.first_bad
    assert report.unsealed == 0 and report.places == report.events + report.journal + 1
    return service, case_id


def events_of(store: Store, case_id: int) -> list[EventRow]:
    with store.unit(write=False) as uow:
        rows = list(uow.session.scalars(select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.seq)))
        uow.session.expunge_all()
        return rows


def record(row: EventRow) -> EventRecord:
    return EventRecord(
        row.case_id, row.seq, row.at, row.actor, row.type, row.step, row.outcome, row.comment,
        dict(row.data), row.decision, row.prev_hash, row.hash, row.signature, row.key_id,
    )  # fmt: skip


def rechain(store: Store, case_id: int, change: Any) -> None:
    """The attacker's rewrite: ``change`` edits the case's events (a list of
    records, which it may shorten); every hash from the first event on is
    recomputed, signatures kept where the hash did not change, and the
    case's head fixed."""
    records = [record(r) for r in events_of(store, case_id)]
    records = change(records)
    previous, rewritten = GENESIS, []
    for r in records:
        digest = compute_hash(previous, r.payload())
        signature = r.signature if digest == r.hash else None
        rewritten.append(dataclasses.replace(r, prev_hash=previous, hash=digest, signature=signature))
        previous = digest
    with store.unit() as uow:
        uow.session.execute(delete(EventRow).where(EventRow.case_id == case_id, EventRow.seq > len(rewritten)))
        for r in rewritten:
            uow.session.execute(
                update(EventRow)
                .where(EventRow.case_id == case_id, EventRow.seq == r.seq)
                .values(
                    outcome=r.outcome, comment=r.comment, actor=r.actor, decision=r.decision,
                    prev_hash=r.prev_hash, hash=r.hash, signature=r.signature, key_id=r.key_id,
                )
            )  # fmt: skip
        uow.session.execute(update(CaseRow).where(CaseRow.id == case_id).values(event_count=len(rewritten), head_hash=previous))


def at_decision(records: list[EventRecord], **changes: Any) -> list[EventRecord]:
    """The records with the approval (step ``duyet``, signed) changed."""
    (index,) = [i for i, r in enumerate(records) if r.step == "duyet" and r.type == "action"]
    assert records[index].decision and records[index].signature
    return [*records[:index], dataclasses.replace(records[index], **changes), *records[index + 1 :]]


def first_bad(service: CaseService, **options: Any) -> str:
    report = verify(service, **options)
    assert not report.ok
    assert report.first_bad is not None
    return report.first_bad.render()


def test_a_decision_turned_into_an_unsigned_event_is_caught(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided

    rechain(service.store, case_id, lambda rs: at_decision(rs, decision=False, comment="Không đồng ý", actor="ld_khac"))
    assert first_bad(service).startswith(f"case {case_id}, event 6: the decision flag does not match")


def test_an_event_whose_signature_is_dropped_with_its_comment_changed_is_caught(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    rechain(service.store, case_id, lambda rs: [dataclasses.replace(rs[0], comment="sửa"), *rs[1:]])
    assert first_bad(service) == f"case {case_id}, event 1: missing signature (every event is signed)"


def test_a_decision_flag_dropped_alone_is_caught(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    rechain(service.store, case_id, lambda rs: at_decision(rs, decision=False))
    assert f"case {case_id}, event 6" in first_bad(service)


def test_a_decisions_outcome_changed_with_hashes_recomputed_is_caught(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    rechain(service.store, case_id, lambda rs: at_decision(rs, outcome="tra_lai"))
    assert f"case {case_id}, event 6" in first_bad(service)


def test_the_last_events_deleted_and_the_head_fixed_are_caught_by_the_ledger(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    rechain(service.store, case_id, lambda rs: rs[:4])
    assert verify(service).first_bad is not None
    problems = [f.render() for f in verify(service).bad]
    assert any("is gone (deleted" in p for p in problems), problems


def test_a_whole_case_deleted_is_caught_by_the_ledger(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    with service.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM case_steps WHERE case_id = :c"), {"c": case_id})
        conn.execute(text("DELETE FROM events WHERE case_id = :c"), {"c": case_id})
        conn.execute(text("DELETE FROM cases WHERE id = :c"), {"c": case_id})
    assert "ledger: place" in first_bad(service) and "is gone" in first_bad(service)


@pytest.mark.parametrize(
    ("sql", "told"),
    [
        ("UPDATE case_steps SET status = 'active' WHERE case_id = :c AND step_id = 'duyet'", "«Duyệt»: its status"),
        ("UPDATE case_steps SET actor = 'someone' WHERE case_id = :c AND step_id = 'kiem_tra'", "«Kiểm tra»: its actor"),
        ("UPDATE case_steps SET outcome = 'khong_dat' WHERE case_id = :c AND step_id = 'kiem_tra'", "«Kiểm tra»: its outcome"),
        ("UPDATE cases SET status = 'rejected' WHERE id = :c", "status"),
        ("UPDATE cases SET unit = 'u2' WHERE id = :c", "unit"),
        ("UPDATE cases SET applicant = 'khac' WHERE id = :c", "applicant"),
        ("UPDATE case_steps SET unit = 'u2' WHERE case_id = :c", "unit"),
    ],
)
def test_an_edited_case_or_step_row_is_caught_by_the_replay(decided: tuple[CaseService, int], sql: str, told: str) -> None:
    service, case_id = decided
    with service.store.engine.begin() as conn:
        conn.execute(text(sql), {"c": case_id})
    shown = first_bad(service)
    assert shown.startswith(f"case {case_id}") and told in shown, shown


def test_edited_case_data_is_caught_by_the_replay(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    with service.store.unit() as uow:
        uow.session.execute(update(CaseRow).where(CaseRow.id == case_id).values(data={"kind": "b"}))
    shown = first_bad(service)
    assert shown.startswith(f"case {case_id}") and "data" in shown, shown


def test_a_user_granted_admin_behind_the_journal_is_caught(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.unit() as uow:
        uow.session.execute(update(UserRow).where(UserRow.id == "lan").values(permissions=["admin"]))
    assert first_bad(service) == "state: user lan: permissions differ from its last journal entry (changed behind its back?)"


def test_a_finding_is_told_in_vietnamese_by_default_and_in_english_when_asked(decided: tuple[CaseService, int]) -> None:
    service, case_id = decided
    with service.store.unit() as uow:
        uow.session.execute(update(UserRow).where(UserRow.id == "lan").values(permissions=["admin"]))
    with speaking("vi"):
        report = verify(service)
        assert report.first_bad is not None and report.first_bad.part == "state"
        assert report.first_bad.render() == (
            "bảng dữ liệu: người dùng lan: permissions khác với mục nhật ký cuối cùng của nó (bị thay đổi lén, ngoài nhật ký?)"
        )
    with speaking("en"):
        shown = verify(service).first_bad
        assert shown is not None and shown.as_dict() == {
            "part": "state",
            "case": None,
            "seq": None,
            "reason": "user lan: permissions differ from its last journal entry (changed behind its back?)",
            "text": "state: user lan: permissions differ from its last journal entry (changed behind its back?)",
        }
    rechain(service.store, case_id, lambda rs: [dataclasses.replace(rs[0], comment="sửa"), *rs[1:]])
    with speaking("vi"):
        bad = verify(service).first_bad
        assert bad is not None and bad.render() == f"hồ sơ {case_id}, sự kiện 1: thiếu chữ ký (mọi sự kiện đều phải được ký)"


def test_a_user_added_behind_the_journal_is_caught(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, name, unit, roles, permissions, created_at)"
                " VALUES ('ke_gian', 'X', 'u1', '[]', '[\"admin\"]', CURRENT_TIMESTAMP)"
            )
        )
    assert "user ke_gian: in the database but not in the journal" in first_bad(service)


def test_a_journal_entry_rewritten_is_caught(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.unit() as uow:
        uow.session.execute(
            text("UPDATE journal SET data = :d WHERE subject = 'lan'"), {"d": json.dumps({"permissions": ["admin"]})}
        )
    assert "journal: entry" in first_bad(service)


def test_a_cut_ledger_tail_is_caught_against_a_checkpoint_kept_elsewhere(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.unit(write=False) as uow:
        boundary, _ = head(uow.connection)  # the end of a seal: a signed place
    late = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, late.id, step="nop", outcome="done")
    seal_all(service.store, service.signer)
    with service.store.unit(write=False) as uow:
        kept = json.dumps(checkpoint(uow.connection, service.signer))
    assert verify(service, checkpoint=kept).ok
    # The attacker removes the newest case and cuts the ledger back to the
    # seal before it: every table agrees with every other again.
    with service.store.unit() as uow:
        uow.session.execute(delete(LedgerRow).where(LedgerRow.position > boundary))
        for table in ("case_steps", "events"):
            uow.session.execute(text(f"DELETE FROM {table} WHERE case_id = :c"), {"c": late.id})
        uow.session.execute(delete(CaseRow).where(CaseRow.id == late.id))
    assert verify(service).ok, "without a checkpoint kept elsewhere a clean cut is not seen (README says so)"
    shown = first_bad(service, checkpoint=kept)
    assert shown.startswith("checkpoint:") and "its tail was cut" in shown, shown


def test_a_checkpoint_altered_or_signed_by_another_key_is_refused(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.unit(write=False) as uow:
        statement = checkpoint(uow.connection, service.signer)
        forged = checkpoint(uow.connection, Signer.generate())
    assert "the signature does not hold" in first_bad(service, checkpoint=json.dumps({**statement, "length": 1}))
    assert "the signature does not hold" in first_bad(service, checkpoint=json.dumps(forged))
    assert "not a tinhgon checkpoint" in first_bad(service, checkpoint="[]")


def test_a_rewritten_place_before_a_checkpoint_is_caught(decided: tuple[CaseService, int]) -> None:
    service, _ = decided
    with service.store.unit(write=False) as uow:
        kept = json.dumps(checkpoint(uow.connection, service.signer))
        length, _ = head(uow.connection)
    # Rebuilding the ledger's hashes after editing place 2 needs no key, but
    # the last place's signature and the checkpoint's head both break.
    with service.store.unit() as uow:
        uow.session.execute(update(LedgerRow).where(LedgerRow.position == 2).values(entry_hash="0" * 64))
    assert "ledger: place 2" in first_bad(service, checkpoint=kept)
    assert length > 2


def test_old_events_verify_after_the_key_is_rotated(decided: tuple[CaseService, int], tmp_path: Any) -> None:
    service, case_id = decided
    key = tmp_path / "signing.key"
    key.write_bytes(service.signer.private_pem())
    old, new = rotate(key)
    assert old.key_id == service.signer.key_id != new.key_id
    rotated = Transacting(service.store, signer=new, calendar=service.calendar, clock=service.clock)
    service.store.signer = new
    rotated.act(CB, case_id + 1, step="kiem_tra", outcome="dat")
    seal_all(service.store, new)
    both = Keyring([new.verifier(), old.verifier()])
    report = verify_database(service.store, both, calendar=service.calendar)
    assert report.ok, report.first_bad
    alone = verify_database(service.store, Keyring([new.verifier()]), calendar=service.calendar)
    assert not alone.ok and "not a trusted key" in alone.bad[0].render()
