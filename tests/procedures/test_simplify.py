"""The simplifier: each fix, the merge rules, the fixed point, and the YAML it writes."""

from __future__ import annotations

from procedures import load_text, metrics, simplify
from procedures.serialize import to_data
from procedures.simplify import merge_reviews
from procedures.writer import dump
from tests.conftest import definition_text

ROLES = """\
roles:
  - {id: dan, name: Người dân, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
  - {id: ld, name: Lãnh đạo, kind: office}
"""


def load(body: str, head: str | None = None):  # type: ignore[no-untyped-def]
    return load_text(definition_text(ROLES + body) if head is None else definition_text(ROLES + body, head=head))


def test_nothing_to_apply_changes_nothing() -> None:
    defn = load("""\
documents: [{id: don, name: Đơn, from: applicant}, {id: kq, name: KQ, deliverable: true}]
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
""")
    result = simplify(defn)
    assert not result.changed and result.after is defn and result.applied == []


def test_once_only_then_unused_then_order() -> None:
    defn = load("""\
documents:
  - {id: cccd, name: CCCD, from: applicant, registry: population, prep_hours: 1, prep_cost: 5000}
  - {id: anh, name: Ảnh, from: applicant, prep_cost: 20000}
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don, cccd, anh]}
  - {id: xet, name: Xét, role: cb, inputs: [don, cccd], outputs: [kq]}
""")
    result = simplify(defn)
    assert [f.rule for f in result.applied] == ["once-only", "unused-document"]
    after = result.after
    assert after.version == 2 and after.based_on == 1
    assert after.document_by_id["cccd"].source == "registry"
    assert "anh" not in after.document_by_id
    assert after.step("nop").inputs == ("don",)
    assert after.step("xet").inputs == ("don", "cccd")
    m0, m1 = metrics(defn), metrics(after)
    assert m1["compliance_cost"] == m0["compliance_cost"] - 1 * 40000 - 5000 - 20000


def test_duplicate_request_keeps_the_first() -> None:
    defn = load("""\
documents: [{id: don, name: Đơn, from: applicant}, {id: kq, name: KQ, deliverable: true}]
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
  - {id: nhan, name: Nhận, role: dan, inputs: [kq, don]}
""")
    result = simplify(defn)
    assert [f.rule for f in result.applied] == ["duplicate-request"]
    assert result.after.step("nhan").inputs == ("kq",)


MERGE = """\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: p1, name: Phiếu 1}
  - {id: p2, name: Phiếu 2}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - id: xet
    name: Xét
    role: cb
    kind: review
    duration: 2h
    effort: 1h
    fee: 10
    inputs: [don]
    outputs: [p1]
    outcomes: {ok: proceed, sai: reject}
  - {id: ghi, name: Ghi, role: cb, duration: 1h, inputs: [p1]}
  - id: xet_lai
    name: Xét lại
    role: cb
    kind: review
    duration: 1h
    effort: 3h
    fee: 99
    inputs: [don]
    outputs: [p2]
    outcomes: {ok: {return: nop}, dat: proceed, lam_lai: {return: ghi}, sai: reject}
  - id: ky
    name: Ký
    role: ld
    kind: sign
    inputs: [p2]
    outputs: [kq]
    outcomes: {ok: proceed, xem_lai: {return: xet_lai}}
"""


def test_merge_rules() -> None:
    defn = load(MERGE)
    merged = merge_reviews(defn, "xet", "xet_lai")
    first = merged.step("xet")
    assert [s.id for s in merged.steps] == ["nop", "xet", "ghi", "ky"]
    assert first.outputs == ("p1", "p2")
    assert (first.duration, first.effort, first.fee) == (2.0, 3.0, 10)
    # 'ok' is taken by proceed: the return to the applicant joins as ok_2;
    # proceed and reject are already there; the return to 'ghi' (not an
    # ancestor of xet) is dropped.
    assert [(n, e.kind, e.target) for n, e in first.outcomes] == [
        ("ok", "proceed", None),
        ("sai", "reject", None),
        ("ok_2", "return", "nop"),
    ]
    assert merged.step("ky").after == ("ghi",)
    assert merged.step("ky").outcome("xem_lai").target == "xet"  # type: ignore[union-attr]


def test_simplify_merges_then_reorders_and_is_a_fixed_point() -> None:
    defn = load(MERGE)
    result = simplify(defn)
    rules = [f.rule for f in result.applied]
    assert rules[0] == "repeated-review"
    again = simplify(result.after)
    assert again.applied == []
    m0, m1 = metrics(defn), metrics(result.after)
    assert m1["lead_time_days"] <= m0["lead_time_days"]
    assert m1["compliance_cost"] <= m0["compliance_cost"]


def test_a_merge_that_lengthens_the_lead_time_is_passed_over() -> None:
    defn = load("""\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, kind: review, duration: 1h, inputs: [don], outcomes: {ok: proceed, no: reject}}
  - {id: ky, name: Ký, role: ld, kind: sign, duration: 2h, after: [xet], outputs: [kq]}
  - {id: xet_lai, name: Xét lại, role: cb, kind: review, duration: 5d, inputs: [don], after: [xet]}
""")
    result = simplify(defn)
    assert "repeated-review" not in [f.rule for f in result.applied]
    assert [(f.rule, f.steps) for f in result.skipped] == [("repeated-review", ("xet", "xet_lai"))]


def test_after_lists_are_transitively_reduced() -> None:
    defn = load("""\
documents:
  - {id: cccd, name: CCCD, from: applicant, registry: population}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [cccd]}
  - {id: a, name: A, role: cb}
  - {id: b, name: B, role: cb, outputs: [kq], after: [nop, a]}
""")
    result = simplify(defn)
    assert result.changed
    assert result.after.step("b").after == ("a",)


def test_written_yaml_keeps_comments_and_order_and_loads_back() -> None:
    text = definition_text(
        ROLES
        + """\
# giấy tờ
documents:
  - {id: cccd, name: CCCD, from: applicant, registry: population}  # có trong CSDL dân cư
  - {id: kq, name: KQ, deliverable: true}
steps:
  # bước đầu
  - id: nop
    name: Nộp
    role: dan
    inputs: [cccd]
  - id: xet
    name: Xét
    role: cb
    duration: 1d4h
    inputs: [cccd]
    outputs: [kq]
"""
    )
    defn = load_text(text)
    result = simplify(defn)
    out = dump(to_data(result.after, like=defn.data), text)
    assert "# giấy tờ" in out and "# bước đầu" in out and "# có trong CSDL dân cư" in out
    assert "duration: 1d4h" in out
    assert out.index("version: 2") < out.index("based_on: 1") < out.index("roles:")
    back = load_text(out)
    assert metrics(back) == metrics(result.after)
    assert back.document_by_id["cccd"].source == "registry"


def test_house_style_dump_loads_back() -> None:
    defn = load(MERGE)
    text = dump(to_data(defn))
    assert metrics(load_text(text)) == metrics(defn)


def test_texts_the_reader_would_change_are_quoted() -> None:
    """Found by the property tests: keys and names with edge spaces, leading
    indicators or line-break characters must read back as written."""
    for name in ("¦ ", " x", "?0", ":0", "a\x85b", "a\u2028b", "- a"):
        data = {
            "format": "tinhgon/1",
            "code": "T",
            "name": name,
            "version": 1,
            "roles": [{"id": "o", "name": name, "kind": "office"}],
            "documents": [],
            "steps": [{"id": "s", "name": name, "role": "o", "outcomes": {name: "proceed", f"{name}2": "reject"}}],
        }
        from procedures import build

        defn = build(data)
        assert to_data(load_text(dump(to_data(defn)))) == to_data(defn), repr(name)


def test_a_shorter_time_limit_alone_is_a_new_version() -> None:
    body = """\
time_limit: 10d
documents: [{id: don, name: Đơn, from: applicant}, {id: kq, name: KQ, deliverable: true}]
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, duration: 3d4h, inputs: [don], outputs: [kq]}
"""
    result = simplify(load(body))
    assert result.changed and result.applied == []
    assert (result.after.version, result.after.time_limit_text, result.after.time_limit) == (2, "4d", 32.0)
    assert result.report()["time_limit"] == {"before": "10d", "after": "4d"}
    assert dump(to_data(result.after, like=result.before.data), "").count("time_limit: 4d") == 1


def test_a_time_limit_the_work_fills_or_below_a_day_stays() -> None:
    for limit, duration in (("3d4h", "3d4h"), ("4d", "3d1h"), ("1d", "2h"), ("5d", "0h")):
        body = f"""\
time_limit: {limit}
documents: [{{id: kq, name: KQ, deliverable: true}}]
steps:
  - {{id: xet, name: Xét, role: cb, duration: {duration}, outputs: [kq]}}
"""
        result = simplify(load(body))
        assert not result.changed, (limit, duration)
        assert result.report()["time_limit"] == {"before": limit, "after": limit}
