"""Which body changes are amendments (service.md section 4)."""

from __future__ import annotations

import pytest

from procedures import load_text
from procedures.amendment import is_amendment

BASE = """\
format: tinhgon/1
code: X-1
name: Thủ tục
version: 1
annual_volume: 10
roles: [{id: dv, name: Đơn vị, kind: applicant}, {id: cb, name: Cán bộ, kind: office}]
documents: [{id: a, name: A, from: applicant}, {id: kq, name: KQ, deliverable: true}]
fields: [{id: loai, type: enum, values: [a, b]}, {id: f, type: boolean}]
steps:
  - {id: s1, name: Nộp, role: dv, inputs: [a]}
  - {id: s2, name: Xét, role: cb, duration: 1d, inputs: [a], outputs: [kq], when: {field: f, equals: true}, outcomes: {dong_y: proceed, tra: {return: s1}}}
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "name: Thủ tục",
            "name: Thủ tục mới\nsector: Hộ tịch\nagency: Sở\nlegal_basis: [Luật]\nbusiness: true\nin_force_from: '2026-01-01'",
        ),
        ("annual_volume: 10", "annual_volume: 99\ncost_model: {hourly_cost: 1, reason: riêng}"),
        ("values: [a, b]", "values: [{value: a, label: Loại A}, b]"),
        ("dong_y: proceed, tra: {return: s1}", "dong_y: {effect: proceed, label: Đồng ý}, tra: {return: s1, label: Trả lại}"),
        ("name: Xét, role: cb", "name: Xét duyệt, role: cb, share: 0.3"),
        ("{id: a, name: A, from: applicant}", "{id: a, name: Giấy A, from: applicant, copies: {originals: 1}}"),
        ("kind: office}]", "kind: office, unit: Phòng}]"),
        ("steps:", "# chú thích\nsteps:"),
    ],
)
def test_what_no_case_depends_on_is_an_amendment(old: str, new: str) -> None:
    assert is_amendment(load_text(BASE), load_text(BASE.replace(old, new)))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("duration: 1d", "duration: 2d"),
        ("dong_y: proceed, tra", "dong_y: proceed, khong: reject, tra"),
        ("values: [a, b]", "values: [a, b, c]"),
        ("kind: office}]", "kind: system}]"),
        ("version: 1", "version: 1\ntime_limit: 5d"),
        ("{id: a, name: A, from: applicant}", "{id: a, name: A, from: applicant, prep_hours: 1}"),
    ],
)
def test_what_cases_depend_on_needs_a_new_version(old: str, new: str) -> None:
    assert not is_amendment(load_text(BASE), load_text(BASE.replace(old, new)))


def test_labelling_the_default_outcome_is_an_amendment() -> None:
    labelled = BASE.replace(
        "{id: s1, name: Nộp, role: dv, inputs: [a]}",
        "{id: s1, name: Nộp, role: dv, inputs: [a], outcomes: {done: {effect: proceed, label: Đã nộp}}}",
    )
    assert is_amendment(load_text(BASE), load_text(labelled))
