"""One test (or a few) per redundancy rule, on small definitions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from procedures import Definition, load_path, load_text
from procedures.findings import (
    approval_chain,
    duplicate_request,
    extra_visit,
    find_all,
    needless_order,
    once_only,
    over_time_limit,
    overlapping_review,
    repeated_review,
    rework_loop,
    unused_document,
    unused_output,
)
from tests.conftest import DEFINITIONS, SHARED, definition_text

ROLES = """\
roles:
  - {id: dan, name: Người dân, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
  - {id: ld, name: Lãnh đạo, kind: office}
  - {id: ht, name: Hệ thống, kind: system}
"""


def load(body: str) -> Definition:
    return load_text(definition_text(ROLES + body))


def pairs(findings: list) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:  # type: ignore[type-arg]
    return [(f.steps, f.documents) for f in findings]


def test_once_only_names_the_applicant_steps_that_read_it() -> None:
    defn = load("""\
documents:
  - {id: cccd, name: CCCD, from: applicant, registry: population}
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don, cccd]}
  - {id: xet, name: Xét, role: cb, inputs: [cccd, don], outputs: [kq]}
  - {id: nhan, name: Nhận, role: dan, inputs: [kq, cccd]}
""")
    found = once_only(defn)
    assert pairs(found) == [(("nop", "nhan"), ("cccd",))]
    assert all(
        f.fix == "auto" and "Cơ sở dữ liệu quốc gia về dân cư" in f.message and "population" not in f.message for f in found
    )


def test_once_only_applies_to_a_registry_document_nobody_reads() -> None:
    defn = load("""\
documents:
  - {id: cccd, name: CCCD, from: applicant, registry: population}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: xet, name: Xét, role: cb, outputs: [kq]}
""")
    assert pairs(once_only(defn)) == [((), ("cccd",))]


def test_registry_documents_are_not_once_only_findings() -> None:
    defn = load("""\
documents:
  - {id: cccd, name: CCCD, from: registry, registry: population}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: xet, name: Xét, role: cb, inputs: [cccd], outputs: [kq]}
""")
    assert once_only(defn) == []


def test_unused_document() -> None:
    defn = load("""\
documents:
  - {id: anh, name: Ảnh, from: applicant}
  - {id: don, name: Đơn, from: applicant}
  - {id: bo, name: Không ai đọc, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [anh, don]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
  - {id: tu_dong, name: Tự động, role: ht, inputs: [kq]}
""")
    assert pairs(unused_document(defn)) == [(("nop",), ("anh",)), ((), ("bo",))]


def test_duplicate_request() -> None:
    defn = load("""\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
  - {id: bo_sung, name: Bổ sung, role: dan, inputs: [don]}
  - {id: nhan, name: Nhận, role: dan, inputs: [kq, don]}
""")
    assert pairs(duplicate_request(defn)) == [(("nop", "bo_sung", "nhan"), ("don",))]


REVIEWS = """\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: hs, name: Hồ sơ, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don, hs]}
  - {id: xet, name: Xét, role: cb, kind: review, inputs: [don, hs]}
  - {id: ghi, name: Ghi, role: cb, inputs: [don]}
  - {id: xet_lai, name: Xét lại, role: cb, kind: review, inputs: [hs, don]}
  - {id: ky, name: Ký, role: ld, kind: sign, inputs: [don], outputs: [kq]}
"""


def test_repeated_review() -> None:
    found = repeated_review(load(REVIEWS))
    assert pairs(found) == [(("xet", "xet_lai"), ("hs", "don"))]


def test_repeated_review_needs_the_same_role_in_between() -> None:
    body = REVIEWS.replace("{id: ghi, name: Ghi, role: cb,", "{id: ghi, name: Ghi, role: ld,")
    assert repeated_review(load(body)) == []
    assert pairs(overlapping_review(load(body))) == []


def test_repeated_review_needs_nothing_new_to_read() -> None:
    body = (
        REVIEWS.replace("kind: review, inputs: [hs, don]}", "kind: review, inputs: [hs, don, kq0]}")
        .replace("{id: ghi, name: Ghi, role: cb, inputs: [don]}", "{id: ghi, name: Ghi, role: cb, inputs: [don], outputs: [kq0]}")
        .replace("  - {id: kq, name: KQ", "  - {id: kq0, name: Phiếu}\n  - {id: kq, name: KQ")
    )
    assert repeated_review(load(body)) == []


def test_repeated_review_needs_the_same_kind_and_condition() -> None:
    assert repeated_review(load(REVIEWS.replace("kind: review, inputs: [hs, don]", "kind: verify, inputs: [hs, don]"))) == []
    conditional = "fields: [{id: gap, type: boolean}]\n" + REVIEWS.replace(
        "kind: review, inputs: [hs, don]", "kind: review, when: {field: gap, equals: true}, inputs: [hs, don]"
    )
    assert repeated_review(load(conditional)) == []


def test_repeated_review_needs_an_ancestor() -> None:
    body = REVIEWS.replace(
        "{id: xet_lai, name: Xét lại, role: cb, kind: review,",
        "{id: xet_lai, name: Xét lại, role: cb, kind: review, after: [nop],",
    )
    assert repeated_review(load(body)) == []


def test_overlapping_review_between_roles() -> None:
    body = REVIEWS.replace("{id: xet_lai, name: Xét lại, role: cb,", "{id: xet_lai, name: Xét lại, role: ld,")
    defn = load(body)
    assert pairs(overlapping_review(defn)) == [(("xet", "xet_lai"), ("hs", "don"))]
    assert repeated_review(defn) == []


def _review_chain(roles: list[str]) -> str:
    steps = "".join(
        f"  - {{id: x{k}, name: Xét {k}, role: {role}, kind: review, inputs: [don]}}\n" for k, role in enumerate(roles)
    )
    return f"""\
documents: [{{id: don, name: Đơn, from: applicant}}, {{id: kq, name: KQ, deliverable: true}}]
steps:
  - {{id: nop, name: Nộp, role: dan, inputs: [don]}}
{steps}  - {{id: tra, name: Trả, role: ld, kind: issue, outputs: [kq]}}
"""


def test_repeated_review_one_finding_per_later_step_the_latest_earlier_one() -> None:
    # every earlier review qualifies for each later one; the finding names the latest
    found = repeated_review(load(_review_chain(["cb"] * 5)))
    assert [f.steps for f in found] == [("x0", "x1"), ("x1", "x2"), ("x2", "x3"), ("x3", "x4")]
    assert all(f.documents == ("don",) for f in found)


def test_repeated_review_latest_qualifying_skips_one_with_another_role_after_it() -> None:
    # x2 (ld) stands between x1 and x3: x3's latest qualifying earlier review is x1? no:
    # x1 and x0 both have ld after them on the way to x3, so x3 has none; x4 repeats x3
    found = repeated_review(load(_review_chain(["cb", "cb", "ld", "cb", "cb"])))
    assert [f.steps for f in found] == [("x0", "x1"), ("x3", "x4")]
    body = (
        _review_chain(["cb", "cb", "ld", "cb"])
        .replace(
            "{id: x2, name: Xét 2, role: ld, kind: review, inputs: [don]}",
            "{id: x2, name: Xét 2, role: ld, kind: review, inputs: [don], after: [nop]}",
        )
        .replace(
            "{id: x3, name: Xét 3, role: cb, kind: review, inputs: [don]}",
            "{id: x3, name: Xét 3, role: cb, kind: review, inputs: [don], after: [x1, x2]}",
        )
    )
    # x3 waits for x1 directly and for x2 (ld), which x1 does not lead to: x1 qualifies
    assert [f.steps for f in repeated_review(load(body))] == [("x0", "x1"), ("x1", "x3")]


def test_overlapping_review_one_finding_per_later_step_the_latest_earlier_one() -> None:
    found = overlapping_review(load(_review_chain(["cb", "ld", "cb", "ld", "ld"])))
    assert [f.steps for f in found] == [("x0", "x1"), ("x1", "x2"), ("x2", "x3"), ("x2", "x4")]


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["cb"] * 2_000, {"repeated-review": 1_999, "overlapping-review": 0}),
        # another role between any two of the same: nothing repeats, each overlaps the one before
        (["cb", "ld"] * 1_000, {"repeated-review": 0, "overlapping-review": 1_999}),
    ],
)
def test_review_rules_stay_linear_on_a_long_chain(roles: list[str], expected: dict[str, int]) -> None:
    """2,000 reviews in one chain, each reading what all before it read: one
    finding per step at most, in seconds and a few tens of MiB (it took 41 s
    and 5.4 GB)."""
    import time
    import tracemalloc

    defn = load(_review_chain(roles))
    tracemalloc.start()
    started = time.perf_counter()
    found = find_all(defn)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    counts = {rule: sum(f.rule == rule for f in found) for rule in ("repeated-review", "overlapping-review")}
    assert counts == expected
    assert elapsed < 10
    assert peak < 64 * 2**20


def test_needless_order() -> None:
    defn = load("""\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: a, name: A}
  - {id: b, name: B}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: lam_a, name: Làm A, role: cb, inputs: [don], outputs: [a]}
  - {id: lam_b, name: Làm B, role: ld, inputs: [don], outputs: [b]}
  - {id: ky, name: Ký, role: ld, kind: sign, inputs: [a, b], outputs: [kq]}
""")
    assert pairs(needless_order(defn)) == [(("lam_a", "lam_b"), ())]


def test_needless_order_keeps_gates_returns_and_steps_that_read_nothing() -> None:
    defn = load("""\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - id: kiem_tra
    name: Kiểm tra
    role: cb
    kind: review
    inputs: [don]
    outcomes: {ok: proceed, tu_choi: reject}
  - {id: hop, name: Họp, role: ld}
  - id: ky
    name: Ký
    role: ld
    kind: sign
    outputs: [kq]
    inputs: [don]
    outcomes: {ok: proceed, lui: {return: hop}}
  - {id: nhan, name: Nhận, role: dan, inputs: [kq]}
""")
    assert needless_order(defn) == []


def test_needless_order_lets_the_applicant_hand_in_before_a_gate() -> None:
    defn = load("""\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: phi, name: Biên lai, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - id: kiem_tra
    name: Kiểm tra
    role: cb
    inputs: [don]
    outcomes: {ok: proceed, tu_choi: reject}
  - {id: nop_phi, name: Nộp phí, role: dan, inputs: [phi]}
  - {id: cap, name: Cấp, role: cb, inputs: [phi], outputs: [kq]}
""")
    assert pairs(needless_order(defn)) == [(("kiem_tra", "nop_phi"), ())]


def test_unused_output() -> None:
    defn = load("""\
documents:
  - {id: bc, name: Báo cáo}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: lam, name: Làm, role: cb, outputs: [bc, kq]}
""")
    assert pairs(unused_output(defn)) == [(("lam",), ("bc",))]


def test_extra_visit_names_every_visit_after_the_first() -> None:
    defn = load("""\
documents: [{id: kq, name: KQ, deliverable: true}]
steps:
  - {id: a, name: A, role: dan, visit: true}
  - {id: b, name: B, role: cb, outputs: [kq]}
  - {id: c, name: C, role: dan, visit: true}
  - {id: d, name: D, role: dan, visit: true}
""")
    assert pairs(extra_visit(defn)) == [(("c", "d"), ())]
    assert extra_visit(load("documents: []\nsteps: [{id: a, name: A, role: dan, visit: true}]\n")) == []


def test_approval_chain_longest_chain_per_group() -> None:
    defn = load("""\
documents: []
steps:
  - {id: a, name: A, role: cb, kind: approve}
  - {id: b, name: B, role: ld, kind: sign}
  - {id: c, name: C, role: ld, kind: approve}
  - {id: x, name: X, role: cb, kind: approve, after: [a]}
  - {id: d, name: D, role: cb}
  - {id: e, name: E, role: cb, kind: sign}
  - {id: f, name: F, role: cb, kind: sign}
""")
    assert pairs(approval_chain(defn)) == [(("a", "b", "c"), ())]


def test_approval_chain_of_two_is_fine() -> None:
    defn = load(
        "documents: []\nsteps:\n  - {id: a, name: A, role: cb, kind: approve}\n  - {id: b, name: B, role: ld, kind: sign}\n"
    )
    assert approval_chain(defn) == []


def test_approval_chain_ties_take_the_lowest_list_positions() -> None:
    defn = load("""\
documents: []
steps:
  - {id: a, name: A, role: cb, kind: approve}
  - {id: b, name: B, role: cb, kind: approve, after: [a]}
  - {id: c, name: C, role: cb, kind: approve, after: [a]}
  - {id: d, name: D, role: cb, kind: sign, after: [b, c]}
""")
    assert pairs(approval_chain(defn)) == [(("a", "b", "d"), ())]


def test_rework_loop_speaks_of_guide_once_for_the_applicant() -> None:
    defn = load("""\
documents: [{id: don, name: Đơn, from: applicant}]
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: lam, name: Làm, role: cb}
  - id: xet
    name: Xét
    role: ld
    inputs: [don]
    outcomes: {ok: proceed, bo_sung: {return: nop}, lam_lai: {return: lam}}
""")
    found = rework_loop(defn)
    assert pairs(found) == [(("xet", "nop"), ()), (("xet", "lam"), ())]
    assert "một lần" in found[0].message and "một lần" not in found[1].message


def test_over_time_limit() -> None:
    body = "documents: []\nsteps:\n  - {id: a, name: A, role: cb, duration: 2d}\n  - {id: b, name: B, role: cb, duration: 4h}\n"
    slow = load_text(definition_text(ROLES + body, head="format: tinhgon/1\ncode: X\nname: X\nversion: 1\ntime_limit: 2d\n"))
    found = over_time_limit(slow)
    assert pairs(found) == [((), ())]
    assert over_time_limit(load(body)) == []
    ok = load_text(definition_text(ROLES + body, head="format: tinhgon/1\ncode: X\nname: X\nversion: 1\ntime_limit: 2d4h\n"))
    assert over_time_limit(ok) == []


def test_find_all_keeps_the_table_order() -> None:
    rules = [f.rule for f in find_all(load(REVIEWS))]
    order = [
        "once-only",
        "unused-document",
        "duplicate-request",
        "repeated-review",
        "needless-order",
        "unused-output",
        "overlapping-review",
        "extra-visit",
        "approval-chain",
        "rework-loop",
        "over-time-limit",
    ]
    assert rules == sorted(rules, key=order.index)
    assert "repeated-review" in rules


def _shipped_and_fixtures() -> list[Path]:
    return sorted([*DEFINITIONS.glob("*.yaml"), *(SHARED / "procedures").glob("*.yaml")])


@pytest.mark.parametrize("path", _shipped_and_fixtures(), ids=lambda p: p.name)
def test_finding_messages_name_steps_roles_and_outcomes_never_their_ids(path: Path) -> None:
    # procedure-format.md section 5: people read names and labels; ids are for the JSON
    if path.name == "catalog.yaml":
        return
    defn = load_path(path)
    ids = {s.id for s in defn.steps} | {r.id for r in defn.roles}
    ids |= {name for s in defn.steps for name, _ in s.outcomes if s.outcome_label(name) != name}
    ids = {i for i in ids if "_" in i}  # a one-word id may be an ordinary word of a name
    for finding in find_all(defn):
        words = set(re.findall(r"[a-z0-9_]+", finding.message))
        assert not (words & ids), (finding.rule, finding.message)
