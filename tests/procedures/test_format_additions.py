"""The keys added to tinhgon/1 for the reform plan and for labels: each is
checked at its line, and what it means reaches the model and the metrics."""

from __future__ import annotations

import datetime

import pytest

from procedures import load_text, metrics
from procedures.errors import DefinitionError

HEAD = "format: tinhgon/1\ncode: X-1\nname: Thử\nversion: 2\n"
BODY = """\
roles: [{id: dv, name: Đơn vị, kind: applicant}, {id: cb, name: Cán bộ, kind: office}]
documents:
  - {id: a, name: A, from: applicant, prep_cost: 1000}
  - {id: kq, name: KQ, deliverable: true}
fields: [{id: f, type: boolean}]
steps:
  - {id: s1, name: S1, role: dv, inputs: [a]}
  - {id: s2, name: S2, role: cb, effort: 2h, fee: 100, when: {field: f, equals: true}, share: 0.25, inputs: [a], outputs: [kq]}
"""


def problems(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, source="t.yaml")
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_the_new_keys_reach_the_model() -> None:
    defn = load_text(HEAD + "in_force_from: '2025-07-01'\nbusiness: true\n" + BODY)
    assert defn.in_force_from == datetime.date(2025, 7, 1) and defn.business
    assert defn.step("s2").share == 0.25 and defn.step("s1").weight == 1.0


def test_a_share_weights_the_costs_of_its_step_but_not_the_counts() -> None:
    m = metrics(load_text(HEAD + "cost_model: {office_hourly_cost: 1000}\n" + BODY))
    assert m["office_hours"] == pytest.approx(0.5)
    assert m["processing_cost"] == pytest.approx(500.0)
    # the document is read by s1 (share 1) too: its preparation counts fully; the step fee by its share
    assert m["compliance_cost"] == pytest.approx(1000 + 25)
    assert m["steps"] == 2 and m["applicant_documents"] == 1


def test_each_bad_new_key_is_an_error_at_its_line() -> None:
    text = (
        HEAD
        + "in_force_from: 2025-02-30\nmerged_into: X-1\n"
        + BODY.replace("{id: s1, name: S1, role: dv, inputs: [a]}", "{id: s1, name: S1, role: dv, share: 0.5, inputs: [a]}")
        .replace("share: 0.25", "share: 1.5")
        .replace("prep_cost: 1000}", "prep_cost: 1000, registry: khong_co}")
    )
    got = problems(text)
    paths = {(line, path) for line, path, _ in got}
    assert (5, "in_force_from") in paths
    assert (6, "merged_into") in paths
    assert (9, "documents[0].registry") in paths
    assert (13, "steps[0].share") in paths and (14, "steps[1].share") in paths
    messages = " ".join(m for _, _, m in got)
    assert "chỉ đi cùng abolished" in messages and "chính nó" in messages and "chỉ đi cùng when" in messages


def test_an_abolished_version_has_no_steps_and_measures_zero() -> None:
    got = problems(HEAD + "abolished: Bãi bỏ theo quyết định thử\n" + BODY)
    assert {path for _, path, _ in got} >= {"roles", "documents", "steps", "fields"}
    defn = load_text(HEAD + "abolished: Bãi bỏ theo quyết định thử\nmerged_into: Y-2\nfees: [{name: Lệ phí, amount: 5000}]\n")
    assert defn.abolished == "Bãi bỏ theo quyết định thử" and defn.merged_into == "Y-2"
    m = metrics(defn)
    assert m["compliance_cost"] == 0 and m["steps"] == 0 and m["within_time_limit"] is None


def test_labels_of_outcomes_enum_values_and_registries() -> None:
    text = (
        HEAD
        + "registries: [{id: dat_dai, name: Cơ sở dữ liệu đất đai}, {id: population, name: CSDL dân cư}]\n"
        + """\
roles: [{id: dv, name: Đơn vị, kind: applicant}, {id: cb, name: Cán bộ, kind: office}]
documents:
  - {id: a, name: A, from: applicant, registry: dat_dai, copies: {originals: 1, certified: 2}, present_only: false}
  - {id: kq, name: KQ, deliverable: true}
fields: [{id: loai, type: enum, values: [{value: hsq, label: Hạ sĩ quan}, binh_si]}]
steps:
  - {id: s1, name: S1, role: dv, inputs: [a]}
  - id: s2
    name: S2
    role: cb
    inputs: [a]
    outputs: [kq]
    outcomes:
      dong_y: {effect: proceed, label: Đồng ý}
      tra_lai: {return: s1, label: Yêu cầu bổ sung}
      khong_dat: reject
"""
    )
    defn = load_text(text)
    s2 = defn.step("s2")
    assert [s2.outcome_label(n) for n, _ in s2.outcomes] == ["Đồng ý", "Yêu cầu bổ sung", "khong_dat"]
    assert s2.outcome("tra_lai") is not None and s2.outcome("tra_lai").target == "s1"  # type: ignore[union-attr]
    loai = defn.field_by_id["loai"]
    assert (
        loai.values == ("hsq", "binh_si") and loai.value_label("hsq") == "Hạ sĩ quan" and loai.value_label("binh_si") == "binh_si"
    )
    assert defn.registry_name("dat_dai") == "Cơ sở dữ liệu đất đai"
    assert defn.registry_name("population") == "CSDL dân cư"  # a declared registry may rename a built-in one
    assert defn.registry_name("insurance") == "Cơ sở dữ liệu quốc gia về bảo hiểm"
    copies = defn.document_by_id["a"].copies
    assert copies is not None and (copies.originals, copies.copies, copies.certified) == (1, 0, 2)
