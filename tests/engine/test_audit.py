"""The audit trail: chains of sealed events and what verification catches."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.audit import (
    EVENT_TYPES,
    GENESIS,
    BadEvent,
    EventRecord,
    canonical,
    compute_hash,
    format_at,
    is_decision,
    seal,
    verify_all,
    verify_chain,
)
from engine.keys import KeyFileError, Signer, Verifier
from procedures.errors import TinhgonError
from procedures.messages import speaking

pytestmark = pytest.mark.usefixtures("english")  # the findings are checked in their English wording

SIGNER = Signer.generate()
VERIFIER = SIGNER.verifier()
OTHER = Signer.generate()

# (type, step, outcome, comment, data, decision): a short but varied case life.
STORY: list[tuple[str, str | None, str | None, str | None, dict[str, Any], bool]] = [
    ("created", None, None, None, {"ho_ten": "Nguyễn Văn A", "don_vi": "Tiểu đoàn 3"}, False),
    ("action", "nop-ho-so", "done", "Đã nộp đủ giấy tờ", {"so_giay_to": 4}, False),
    ("action", "tham-dinh", "thieu", "Thiếu giấy ra quân", {}, True),
    ("data", None, None, "Bổ sung giấy ra quân", {"giay_ra_quan": {"so": "123/GRQ", "ngay": "2024-05-06"}}, False),
    ("action", "phe-duyet", "dong-y", None, {"muc_tro_cap": 12500000}, True),
    ("system", "thong-bao", "done", None, {"kenh": "sms"}, False),
]

START = datetime(2024, 5, 2, 8, 0, tzinfo=timezone(timedelta(hours=7)))


def make_chain(case_id: int = 1, signer: Signer = SIGNER, story: list[Any] | None = None) -> list[EventRecord]:
    records: list[EventRecord] = []
    previous = GENESIS
    for index, (type_, step, outcome, comment, data, decision) in enumerate(story or STORY, start=1):
        record = seal(
            case_id=case_id,
            seq=index,
            at=(START + timedelta(hours=index)).isoformat(),
            actor="officer:7" if type_ == "action" else "citizen:42",
            type=type_,
            step=step,
            outcome=outcome,
            comment=comment,
            data=data,
            decision=decision,
            prev_hash=previous,
            signer=signer,
        )
        records.append(record)
        previous = record.hash
    return records


def legacy_chain() -> list[EventRecord]:
    """A chain as the first rules wrote it: only decisions signed, keys unnamed."""
    return [dataclasses.replace(e, key_id=None, signature=e.signature if e.decision else None) for e in make_chain()]


def head(records: list[EventRecord]) -> tuple[int, str]:
    return (len(records), records[-1].hash if records else GENESIS)


# --- good chains -------------------------------------------------------------


def test_a_sealed_chain_verifies() -> None:
    chain = make_chain()
    assert verify_chain(chain, VERIFIER) is None
    assert verify_chain(chain, VERIFIER, head(chain)) is None
    assert verify_chain(chain, VERIFIER, head(chain), case_id=1) is None


def test_seal_links_hashes_and_signs_every_event_naming_its_key() -> None:
    chain = make_chain()
    assert chain[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash
    for record in chain:
        assert record.hash == compute_hash(record.prev_hash, record.payload())
        assert record.signature is not None
        assert record.key_id == SIGNER.key_id
        assert VERIFIER.verify(record.hash, record.signature)


def test_payload_holds_every_field_but_the_derived_ones() -> None:
    record = make_chain()[0]
    fields = {field.name for field in dataclasses.fields(EventRecord)}
    assert set(record.payload()) == fields - {"prev_hash", "hash", "signature", "key_id"}


def test_an_empty_case_verifies_against_an_empty_head() -> None:
    assert verify_chain([], VERIFIER) is None
    assert verify_chain([], VERIFIER, (0, GENESIS)) is None
    assert verify_chain([], VERIFIER, (0, GENESIS), case_id=4) is None


# --- edits, deletions, reordering ----------------------------------------------


EDITS: dict[str, Callable[[EventRecord], EventRecord]] = {
    "comment": lambda r: dataclasses.replace(r, comment=(r.comment or "") + "."),
    "actor": lambda r: dataclasses.replace(r, actor="officer:8"),
    "data": lambda r: dataclasses.replace(r, data={**r.data, "them": 1}),
    "outcome": lambda r: dataclasses.replace(r, outcome="tu-choi"),
    "at": lambda r: dataclasses.replace(r, at=r.at.replace("T", " ")),
    "step": lambda r: dataclasses.replace(r, step="buoc-khac"),
    "type": lambda r: dataclasses.replace(r, type="withdrawn" if r.type != "withdrawn" else "system"),
    "decision": lambda r: dataclasses.replace(r, decision=not r.decision, signature=r.signature or SIGNER.sign(r.hash)),
}


@pytest.mark.parametrize("field", sorted(EDITS))
@pytest.mark.parametrize("position", range(1, len(STORY) + 1))
def test_editing_a_hashed_field_is_caught_at_that_event(field: str, position: int) -> None:
    chain = make_chain()
    chain[position - 1] = EDITS[field](chain[position - 1])
    assert verify_chain(chain, VERIFIER, head(make_chain())) == BadEvent(1, position, "hash mismatch (edited?)")


def test_an_edit_with_the_hash_recomputed_breaks_the_next_link() -> None:
    chain = make_chain()
    edited = dataclasses.replace(chain[1], comment="Không có gì")
    chain[1] = dataclasses.replace(edited, hash=compute_hash(edited.prev_hash, edited.payload()))
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 2, "bad signature (forged, altered or made by another key?)")
    chain = legacy_chain()
    assert not chain[1].decision
    edited = dataclasses.replace(chain[1], comment="Không có gì")
    chain[1] = dataclasses.replace(edited, hash=compute_hash(edited.prev_hash, edited.payload()))
    assert verify_chain(chain, VERIFIER, legacy=len(chain)) == BadEvent(
        1, 3, "prev_hash does not match event 2 (reordered or deleted?)"
    ), "under the first rules event 2 was unsigned, and the next link catches the edit"


def test_rewriting_everything_breaks_the_first_signature() -> None:
    # Someone with write access but without the key rehashes the whole chain.
    chain = make_chain()
    edited = dataclasses.replace(chain[0], comment="sửa")
    rewritten = [dataclasses.replace(edited, hash=compute_hash(GENESIS, edited.payload()))]
    for record in chain[1:]:
        moved = dataclasses.replace(record, prev_hash=rewritten[-1].hash)
        rewritten.append(dataclasses.replace(moved, hash=compute_hash(moved.prev_hash, moved.payload())))
    problem = verify_chain(rewritten, VERIFIER, head(rewritten))
    assert problem == BadEvent(1, 1, "bad signature (forged, altered or made by another key?)")


def test_rewriting_everything_before_a_legacy_decision_breaks_its_signature() -> None:
    # The same on events of the first rules, whose plain events were unsigned.
    chain = legacy_chain()
    edited = dataclasses.replace(chain[0], comment="sửa")
    rewritten = [dataclasses.replace(edited, hash=compute_hash(GENESIS, edited.payload()))]
    for record in chain[1:]:
        moved = dataclasses.replace(record, prev_hash=rewritten[-1].hash)
        rewritten.append(dataclasses.replace(moved, hash=compute_hash(moved.prev_hash, moved.payload())))
    problem = verify_chain(rewritten, VERIFIER, head(rewritten), legacy=len(rewritten))
    assert problem == BadEvent(1, 3, "bad signature (forged, altered or made by another key?)")


def test_editing_the_stored_hash_or_link_is_caught() -> None:
    chain = make_chain()
    chain[2] = dataclasses.replace(chain[2], hash="f" * 64)
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 3, "hash mismatch (edited?)")
    chain = make_chain()
    chain[0] = dataclasses.replace(chain[0], prev_hash="1" * 64)
    assert verify_chain(chain, VERIFIER) == BadEvent(
        1, 1, "prev_hash does not match the start of the chain (reordered or deleted?)"
    )


def test_deleting_a_middle_event_is_caught() -> None:
    chain = make_chain()
    del chain[2]
    problem = verify_chain(chain, VERIFIER)
    assert problem is not None
    assert (problem.case_id, problem.seq) == (1, 3)
    assert problem.reason.startswith("missing event seq 3 (deleted")


def test_deleting_and_renumbering_is_caught() -> None:
    chain = make_chain()
    del chain[2]
    chain = [dataclasses.replace(record, seq=index) for index, record in enumerate(chain, start=1)]
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 3, "prev_hash does not match event 2 (reordered or deleted?)")


def test_deleting_the_first_event_is_caught() -> None:
    chain = make_chain()[1:]
    problem = verify_chain(chain, VERIFIER)
    assert problem is not None
    assert problem.seq == 1


def test_deleting_the_last_event_is_caught_by_the_head() -> None:
    full = make_chain()
    chain = full[:-1]
    assert verify_chain(chain, VERIFIER) is None, "a shortened chain is sound on its own"
    assert verify_chain(chain, VERIFIER, head(full)) == BadEvent(
        1, 6, "chain ends at event 5 but the case records 6 events (last events deleted?)"
    )


def test_deleting_every_event_is_caught_by_the_head() -> None:
    full = make_chain()
    problem = verify_chain([], VERIFIER, head(full), case_id=1)
    assert problem is not None
    assert (problem.case_id, problem.seq) == (1, 1)
    with pytest.raises(ValueError, match="case_id"):
        verify_chain([], VERIFIER, head(full))


def test_an_appended_event_is_caught_by_the_head() -> None:
    chain = make_chain()
    recorded = head(chain[:4])
    problem = verify_chain(chain, VERIFIER, recorded)
    assert problem is not None
    assert problem.seq == 5
    assert "records 4 events" in problem.reason


def test_a_head_hash_that_differs_is_caught() -> None:
    chain = make_chain()
    assert verify_chain(chain, VERIFIER, (6, "a" * 64)) == BadEvent(
        1, 6, "the last event's hash is not the head hash the case records"
    )


def test_swapping_two_events_is_caught() -> None:
    chain = make_chain()
    chain[1], chain[2] = chain[2], chain[1]
    problem = verify_chain(chain, VERIFIER)
    assert problem is not None
    assert problem.seq == 2


def test_swapping_two_events_with_seq_renumbered_is_caught() -> None:
    chain = make_chain()
    second, third = chain[1], chain[2]
    chain[1] = dataclasses.replace(third, seq=2)
    chain[2] = dataclasses.replace(second, seq=3)
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 2, "prev_hash does not match event 1 (reordered or deleted?)")


def test_a_duplicated_event_is_caught() -> None:
    chain = make_chain()
    chain.insert(3, chain[2])
    problem = verify_chain(chain, VERIFIER)
    assert problem is not None
    assert problem.seq == 4
    assert "reordered or duplicated" in problem.reason


# --- signatures ----------------------------------------------------------------


def test_a_forged_signature_is_caught() -> None:
    chain = make_chain()
    chain[2] = dataclasses.replace(chain[2], signature=base64.b64encode(os.urandom(64)).decode())
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 3, "bad signature (forged, altered or made by another key?)")


def test_a_stripped_signature_is_caught() -> None:
    for position in range(len(STORY)):
        chain = make_chain()
        chain[position] = dataclasses.replace(chain[position], signature=None, key_id=None)
        assert verify_chain(chain, VERIFIER) == BadEvent(1, position + 1, "missing signature (every event is signed)")


def test_a_stripped_signature_on_a_legacy_decision_is_caught() -> None:
    chain = make_chain()
    chain[4] = dataclasses.replace(chain[4], signature=None)
    assert verify_chain(chain, VERIFIER, legacy=6) == BadEvent(1, 5, "missing signature on a decision event")
    plain = next(i for i, e in enumerate(chain) if not e.decision)
    chain = make_chain()
    chain[plain] = dataclasses.replace(chain[plain], signature=None, key_id=None)
    assert verify_chain(chain, VERIFIER, legacy=6) is None, "the first rules signed decisions only"
    assert verify_chain(chain, VERIFIER, legacy=plain) is not None, "after the switch every event is signed"


def test_the_decision_flag_is_derived_not_trusted() -> None:
    # Turning a decision into a plain event (flag cleared, signature dropped,
    # hashes recomputed) is caught on legacy events too, by what the
    # procedure says the event is.
    chain = make_chain()
    position = next(i for i, e in enumerate(chain) if e.decision)
    flipped = dataclasses.replace(chain[position], decision=False, signature=None, key_id=None)
    chain[position] = dataclasses.replace(flipped, hash=compute_hash(flipped.prev_hash, flipped.payload()))
    decisions = {e.seq: e.decision for e in make_chain()}
    problem = verify_chain(chain[: position + 1], VERIFIER, legacy=6, decision_of=lambda e: decisions[e.seq])
    assert problem == BadEvent(
        1, position + 1, "the decision flag does not match what the procedure makes of this step and outcome (altered?)"
    )
    assert verify_chain(chain[: position + 1], VERIFIER, legacy=6) is None, "the stored flag alone would have been believed"


def test_old_keys_verify_through_the_keyring_and_unknown_keys_are_named() -> None:
    from engine.keys import Keyring

    chain = make_chain(signer=OTHER)
    assert verify_chain(chain, Keyring([VERIFIER, OTHER.verifier()])) is None
    assert verify_chain(chain, VERIFIER) == BadEvent(
        1, 1, f"signed by key {OTHER.key_id}, which is not a trusted key (see tinhgon audit keys)"
    )


def test_a_signature_from_another_key_is_caught() -> None:
    chain = make_chain()
    chain[2] = dataclasses.replace(chain[2], signature=OTHER.sign(chain[2].hash))
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 3, "bad signature (forged, altered or made by another key?)")
    renamed = dataclasses.replace(chain[2], key_id=OTHER.key_id)
    assert verify_chain([*chain[:2], renamed], VERIFIER) == BadEvent(
        1, 3, f"signed by key {OTHER.key_id}, which is not a trusted key (see tinhgon audit keys)"
    )


def test_a_signature_moved_from_another_event_is_caught() -> None:
    chain = make_chain()
    chain[4] = dataclasses.replace(chain[4], signature=chain[2].signature)
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 5, "bad signature (forged, altered or made by another key?)")


def test_a_bogus_signature_on_a_plain_event_is_caught() -> None:
    chain = make_chain()
    chain[0] = dataclasses.replace(chain[0], signature="not base64!")
    assert verify_chain(chain, VERIFIER) == BadEvent(1, 1, "bad signature (forged, altered or made by another key?)")


def test_a_valid_signature_on_a_plain_event_is_accepted() -> None:
    chain = make_chain()
    chain[0] = dataclasses.replace(chain[0], signature=SIGNER.sign(chain[0].hash))
    assert verify_chain(chain, VERIFIER) is None


def test_only_the_canonical_base64_spelling_verifies() -> None:
    record = make_chain()[2]
    assert record.signature is not None
    raw = base64.b64decode(record.signature)
    # 64 bytes end in one character carrying two bits and four unused ones:
    # a lenient decoder reads the same bytes for several spellings.
    last = record.signature[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]
    respelled = record.signature[:-3] + sibling + "=="
    assert base64.b64decode(respelled) == raw
    assert not VERIFIER.verify(record.hash, respelled)
    assert not VERIFIER.verify(record.hash, record.signature.rstrip("="))
    assert not VERIFIER.verify("not hex", record.signature)


# --- cases ---------------------------------------------------------------------


def test_an_event_copied_from_another_case_is_caught() -> None:
    chain = make_chain(case_id=1)
    other = make_chain(case_id=2)
    chain[3] = other[3]
    problem = verify_chain(chain, VERIFIER, case_id=1)
    assert problem is not None
    assert (problem.case_id, problem.seq) == (1, 4)
    assert "case 2" in problem.reason


def test_an_event_copied_with_its_case_id_changed_is_caught() -> None:
    chain = make_chain(case_id=1)
    # The same story in another case links to the same kind of events, but
    # case_id is hashed, so relabelling a copy does not make it fit.
    other = [dataclasses.replace(record, case_id=1) for record in make_chain(case_id=2)]
    assert verify_chain(other, VERIFIER, case_id=1) == BadEvent(1, 1, "hash mismatch (edited?)")
    chain[0] = other[0]
    assert verify_chain(chain, VERIFIER, case_id=1) == BadEvent(1, 1, "hash mismatch (edited?)")


def test_a_whole_chain_from_another_case_is_caught() -> None:
    other = make_chain(case_id=2)
    problem = verify_chain(other, VERIFIER, case_id=1)
    assert problem is not None
    assert problem.seq == 1


# --- verify_all ------------------------------------------------------------------


def test_verify_all_counts_events_and_passes_good_chains() -> None:
    chains = [(case_id, make_chain(case_id), head(make_chain(case_id))) for case_id in (1, 2, 3)]
    chains.append((4, [], (0, GENESIS)))
    report = verify_all(chains, VERIFIER)
    assert report.ok
    assert report.first_bad is None
    assert (report.cases, report.events) == (4, 18)


def test_verify_all_reports_the_first_bad_in_case_and_seq_order() -> None:
    bad_3 = make_chain(3)
    bad_3[1] = dataclasses.replace(bad_3[1], actor="x")
    bad_2 = make_chain(2)
    bad_2[4] = dataclasses.replace(bad_2[4], comment="x")
    good = make_chain(1)
    report = verify_all([(3, bad_3, None), (2, bad_2, None), (1, good, head(good))], VERIFIER)
    assert not report.ok
    assert report.first_bad == BadEvent(2, 5, "hash mismatch (edited?)")
    assert [(bad.case_id, bad.seq) for bad in report.bad] == [(2, 5), (3, 2)]
    assert report.events == 18
    assert report.first_bad.render() == "case 2, event 5: hash mismatch (edited?)"


def test_verify_all_reports_a_case_whose_events_are_all_gone() -> None:
    full = make_chain(5)
    report = verify_all([(5, [], head(full))], VERIFIER)
    assert report.first_bad is not None
    assert (report.first_bad.case_id, report.first_bad.seq) == (5, 1)


# --- stored rows, edited with plain SQL ----------------------------------------------


COLUMNS = "case_id, seq, at, actor, type, step, outcome, comment, data, decision, prev_hash, hash, signature, key_id"


def store(records: list[EventRecord]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE events ({COLUMNS})")
    for r in records:
        # Keys reversed, as a JSON column that reorders them might return them.
        data = json.dumps(dict(reversed(list(r.data.items()))), ensure_ascii=False)
        row = (r.case_id, r.seq, r.at, r.actor, r.type, r.step, r.outcome, r.comment, data, int(r.decision))
        db.execute(
            f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (*row, r.prev_hash, r.hash, r.signature, r.key_id),
        )
    return db


def load(db: sqlite3.Connection) -> list[EventRecord]:
    rows = db.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
    return [
        EventRecord(
            case_id=row[0],
            seq=row[1],
            at=row[2],
            actor=row[3],
            type=row[4],
            step=row[5],
            outcome=row[6],
            comment=row[7],
            data=json.loads(row[8]),
            decision=bool(row[9]),
            prev_hash=row[10],
            hash=row[11],
            signature=row[12],
            key_id=row[13],
        )
        for row in rows
    ]


SQL_TAMPERING = {
    "edit a comment": ("UPDATE events SET comment = 'đã sửa' WHERE seq = 4", 4),
    "edit case data": ("UPDATE events SET data = json_set(data, '$.muc_tro_cap', 99000000) WHERE seq = 5", 5),
    "clear a decision flag": ("UPDATE events SET decision = 0, signature = NULL WHERE seq = 3", 3),
    "delete a middle event": ("DELETE FROM events WHERE seq = 2", 2),
    "delete the last event": ("DELETE FROM events WHERE seq = 6", 6),
    "swap two seqs": ("UPDATE events SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)", 2),
    "strip a signature": ("UPDATE events SET signature = NULL WHERE seq = 5", 5),
}


def test_stored_rows_read_back_verify() -> None:
    chain = make_chain()
    assert load(store(chain)) == chain
    assert verify_chain(load(store(chain)), VERIFIER, head(chain)) is None


@pytest.mark.parametrize("name", list(SQL_TAMPERING))
def test_tampering_with_plain_sql_is_caught(name: str) -> None:
    chain = make_chain()
    db = store(chain)
    statement, position = SQL_TAMPERING[name]
    db.execute(statement)
    problem = verify_chain(load(db), VERIFIER, head(chain), case_id=1)
    assert problem is not None
    assert (problem.case_id, problem.seq) == (1, position)


# --- canonical JSON -------------------------------------------------------------------


def test_canonical_ignores_key_order() -> None:
    one = {"b": 1, "a": {"y": [1, 2], "x": None}}
    two = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert canonical(one) == canonical(two) == b'{"a":{"x":null,"y":[1,2]},"b":1}'


def test_canonical_keeps_vietnamese_as_utf8() -> None:
    encoded = canonical({"ghi_chú": "Thiếu giấy ra quân"})
    assert encoded == '{"ghi_chú":"Thiếu giấy ra quân"}'.encode()
    assert b"\\u" not in encoded


def test_canonical_writes_numbers_as_a_json_column_returns_them() -> None:
    assert canonical([1.0, 1e20, 0.1, 1e-7, -0.0, (1, 2)]) == b"[1,100000000000000000000,0.1,1e-07,0,[1,2]]"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_rejects_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError, match=r"\$\.x\[0\]"):
        canonical({"x": [value]})


def test_canonical_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match=r"\$\.khi is a datetime.*ISO 8601"):
        canonical({"khi": datetime(2024, 5, 2, tzinfo=UTC)})
    with pytest.raises(TypeError, match="set"):
        canonical({"x": {1, 2}})
    with pytest.raises(TypeError, match="keys must be strings"):
        canonical({1: "a"})
    with pytest.raises(ValueError, match="UTF-8"):
        canonical("\ud800")


def test_format_at_writes_utc_with_microseconds() -> None:
    assert format_at(START) == "2024-05-02T01:00:00.000000+00:00"
    with pytest.raises(ValueError, match="no time zone"):
        format_at(datetime(2024, 5, 2))


# --- seal ------------------------------------------------------------------------------


def seal_one(**changes: Any) -> EventRecord:
    fields: dict[str, Any] = {
        "case_id": 1,
        "seq": 1,
        "at": START.isoformat(),
        "actor": "citizen:42",
        "type": "created",
        "prev_hash": GENESIS,
        **changes,
    }
    return seal(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": 0}, "seq must be 1 or more"),
        ({"type": "approved"}, "type 'approved' is not one of"),
        ({"at": "hôm qua"}, "not an ISO 8601 time"),
        ({"at": "2024-05-02T08:00:00"}, "no UTC offset"),
        ({"prev_hash": "ABC"}, "not 64 lowercase hex digits"),
        ({"decision": True}, "needs a signer"),
    ],
)
def test_seal_refuses_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seal_one(**changes)


def test_seal_stores_data_as_the_database_returns_it() -> None:
    record = seal_one(data={"so_tien": 5.0, "ds": (1, 2)})
    assert record.data == {"so_tien": 5, "ds": [1, 2]}
    assert isinstance(record.data["so_tien"], int)


def test_decision_rule() -> None:
    assert is_decision("approve", "proceed")
    assert is_decision("sign", "proceed")
    assert is_decision("review", "reject")
    assert is_decision("verify", "return")
    assert not is_decision("review", "proceed")
    assert not is_decision(None, None)


# --- keys ------------------------------------------------------------------------------


def test_load_or_create_makes_a_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "audit.pem"
    signer = Signer.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert Signer.load_or_create(path).public_pem() == signer.public_pem()
    assert Signer.load(path).public_pem() == signer.public_pem()
    assert [p.name for p in path.parent.iterdir()] == ["audit.pem"], "no temporary file is left behind"


def test_load_or_create_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "audit.pem"
    path.write_bytes(OTHER.private_pem())
    before = path.read_bytes()
    assert Signer.load_or_create(path).public_pem() == OTHER.public_pem()
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"garbage\n", OTHER.public_pem().encode()])
def test_a_garbage_key_file_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "audit.pem"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match="not a PEM private key") as caught:
        Signer.load_or_create(path)
    assert str(path) in str(caught.value)
    assert caught.value.source == str(path)
    assert isinstance(caught.value, TinhgonError)
    assert path.read_bytes() == content


def test_a_key_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(KeyFileError, match=r"rsa\.pem: not an Ed25519 key"):
        Signer.load(path)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        Verifier.from_pem(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


def test_an_encrypted_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locked.pem"
    key = Ed25519PrivateKey.generate()
    encryption = serialization.BestAvailableEncryption(b"mat-khau")
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    with pytest.raises(KeyFileError, match="encrypted"):
        Signer.load(path)


def test_a_key_file_problem_is_told_in_vietnamese_by_default(tmp_path: Path) -> None:
    with speaking("vi"), pytest.raises(KeyFileError, match=r"missing\.pem: không đọc được khóa ký: "):
        Signer.load(tmp_path / "missing.pem")
    with speaking("vi"), pytest.raises(KeyFileError, match=r"^khóa công khai PEM: không phải khóa công khai dạng PEM$"):
        Verifier.from_pem("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFileError, match=r"^public key PEM: not a PEM public key$"):
        Verifier.from_pem("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")


def test_an_unreadable_key_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        Signer.load(tmp_path / "missing.pem")
    with pytest.raises(KeyFileError, match="cannot read"):
        Signer.load_or_create(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(KeyFileError, match=r"file/audit\.pem: cannot read"):
        Signer.load_or_create(tmp_path / "file" / "audit.pem")


def test_verifiers_come_from_the_public_pem_or_a_key_file(tmp_path: Path) -> None:
    chain = make_chain()
    public = tmp_path / "audit.pub.pem"
    public.write_text(SIGNER.public_pem())
    private = tmp_path / "audit.pem"
    private.write_bytes(SIGNER.private_pem())
    for verifier in (Verifier.from_pem(SIGNER.public_pem()), Verifier.load(public), Verifier.load(private)):
        assert verifier.public_pem() == SIGNER.public_pem()
        assert verify_chain(chain, verifier) is None
    assert verify_chain(chain, Verifier.from_pem(OTHER.public_pem())) is not None
    with pytest.raises(KeyFileError, match=r"^operator: not a PEM public key$"):
        Verifier.from_pem("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n", source="operator")
    with pytest.raises(KeyFileError, match=r"missing\.pem: cannot read"):
        Verifier.load(tmp_path / "missing.pem")


def _start_worker(path: str, barrier: Any, results: Any) -> None:
    # Runs in a child process: everyone waits, then all race to create the key.
    barrier.wait()
    results.put(Signer.load_or_create(path).public_pem())


def test_concurrent_first_starts_end_with_one_key(tmp_path: Path) -> None:
    path = str(tmp_path / "keys" / "audit.pem")
    context = multiprocessing.get_context("spawn")
    workers = 6
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [context.Process(target=_start_worker, args=(path, barrier, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    keys = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(set(keys)) == 1
    assert Signer.load(path).public_pem() == keys[0]
    assert os.listdir(Path(path).parent) == ["audit.pem"]


# --- property ---------------------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
DATA = st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4)
MAYBE_TEXT = st.none() | st.text(max_size=12)
OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@st.composite
def chains(draw: st.DrawFn) -> list[EventRecord]:
    case_id = draw(st.integers(min_value=1, max_value=10**6))
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=OFFSETS))
    previous = GENESIS
    records: list[EventRecord] = []
    for seq in range(1, draw(st.integers(min_value=1, max_value=6)) + 1):
        moment += draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
        record = seal(
            case_id=case_id,
            seq=seq,
            at=moment.isoformat(),
            actor=draw(st.text(min_size=1, max_size=12)),
            type=draw(st.sampled_from(sorted(EVENT_TYPES))),
            step=draw(MAYBE_TEXT),
            outcome=draw(MAYBE_TEXT),
            comment=draw(MAYBE_TEXT),
            data=draw(DATA),
            decision=draw(st.booleans()),
            prev_hash=previous,
            signer=SIGNER,
        )
        records.append(record)
        previous = record.hash
    return records


def changed_text(data: st.DataObject, text: str | None) -> str:
    draw = data.draw
    if not text:
        return draw(st.text(min_size=1, max_size=3))
    index = draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = draw(st.characters(codec="utf-8").filter(lambda char: char != text[index]))
    return text[:index] + replacement + text[index + 1 :]


def mutate(data: st.DataObject, record: EventRecord) -> EventRecord:
    draw = data.draw
    field = draw(st.sampled_from([field.name for field in dataclasses.fields(EventRecord)]))
    value: Any
    if field in ("case_id", "seq"):
        value = draw(st.integers().filter(lambda number: number != getattr(record, field)))
    elif field == "decision":
        value = not record.decision
    elif field == "data":
        value = draw(DATA)
        assume(canonical(value) != canonical(record.data))
    elif field == "signature" and record.signature is None:
        value = base64.b64encode(draw(st.binary(min_size=64, max_size=64))).decode()
    elif field in ("step", "outcome", "comment", "signature") and draw(st.booleans()):
        value = None if getattr(record, field) is not None else draw(st.text(max_size=3))
    else:
        value = changed_text(data, getattr(record, field))
    return dataclasses.replace(record, **{field: value})


@given(chains(), st.data())
def test_any_single_change_is_caught_at_that_event(chain: list[EventRecord], data: st.DataObject) -> None:
    recorded = head(chain)
    case_id = chain[0].case_id
    assert verify_chain(chain, VERIFIER, recorded, case_id=case_id) is None
    index = data.draw(st.integers(min_value=0, max_value=len(chain) - 1))
    tampered = list(chain)
    if data.draw(st.booleans()):
        tampered[index] = mutate(data, chain[index])
    else:
        del tampered[index]
    problem = verify_chain(tampered, VERIFIER, recorded, case_id=case_id)
    assert problem is not None
    assert (problem.case_id, problem.seq) == (case_id, index + 1)
