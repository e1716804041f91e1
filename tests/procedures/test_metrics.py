"""Section 7 metrics on small definitions and on the shared fixtures."""

from __future__ import annotations

import json

import pytest

from procedures import load_path, load_text, metrics
from tests.conftest import definition_text, shared_path

BODY = """\
fees: [{name: Lệ phí, amount: 30000}, {name: Phí, amount: 5000}]
cost_model: {hourly_cost: 10000, visit_cost: 20000, visit_hours: 3, office_hourly_cost: 100000}
annual_volume: 1000
roles:
  - {id: dan, name: Dân, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
  - {id: ht, name: Hệ thống, kind: system}
documents:
  - {id: don, name: Đơn, from: applicant, prep_hours: 2, prep_cost: 1000}
  - {id: chua_doc, name: Không đọc, from: applicant, prep_hours: 50, prep_cost: 50000}
  - {id: kq, name: KQ, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dan, duration: 1h, visit: true, fee: 7000, inputs: [don]}
  - {id: xet, name: Xét, role: cb, duration: 3d, effort: 2h, inputs: [don]}
  - {id: tu_dong, name: Tự động, role: ht, duration: 1h, after: [nop]}
  - {id: ky, name: Ký, role: cb, duration: 4h, after: [xet, tu_dong], outputs: [kq]}
  - {id: nhan, name: Nhận, role: dan, duration: 30m, visit: true, inputs: [kq]}
"""


def test_every_metric() -> None:
    m = metrics(load_text(definition_text(BODY)))
    assert m["steps"] == 5 and m["applicant_steps"] == 2 and m["visits"] == 2
    assert m["applicant_documents"] == 1  # the unread one is not counted
    assert m["handoffs"] == 4  # nop->xet, nop->tu_dong, tu_dong->ky, ky->nhan (xet->ky same role)
    assert m["lead_time_days"] == pytest.approx((1 + 24 + 4 + 0.5) / 8)
    assert m["sequential_days"] == pytest.approx((1 + 24 + 1 + 4 + 0.5) / 8)
    assert m["applicant_hours"] == pytest.approx(1.5 + 2 * 3 + 2)
    assert m["compliance_cost"] == pytest.approx(9.5 * 10000 + 35000 + 7000 + 2 * 20000 + 1000)
    assert m["annual_burden"] == pytest.approx(m["compliance_cost"] * 1000)
    assert m["office_hours"] == pytest.approx(6)  # system steps are not officials' time
    assert m["processing_cost"] == pytest.approx(600000)
    assert m["annual_processing_cost"] == pytest.approx(600000000)
    assert m["within_time_limit"] is None


def test_time_limit_compares_in_days() -> None:
    head = "format: tinhgon/1\ncode: X\nname: X\nversion: 1\ntime_limit: 3d5h\n"
    assert metrics(load_text(definition_text(BODY, head=head)))["within_time_limit"] is False
    head = head.replace("3d5h", "3d5h30m")
    assert metrics(load_text(definition_text(BODY, head=head)))["within_time_limit"] is True


@pytest.mark.parametrize("name", ["xuat-ngu.v1", "khai-sinh.v1"])
def test_shared_fixture_metrics(name: str) -> None:
    want = json.loads(shared_path("expected", f"{name}.analyze.json").read_text(encoding="utf-8"))["metrics"]
    got = metrics(load_path(shared_path("procedures", f"{name}.yaml")))
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key  # type: ignore[literal-required]
