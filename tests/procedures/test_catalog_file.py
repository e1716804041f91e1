"""``catalog.yaml``: read and checked like a definition (reform-plan.md section 1)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from procedures.catalog_file import catalog_from_text, read_catalog_file
from procedures.errors import DefinitionError
from procedures.messages import speaking

SHARED = Path(__file__).resolve().parents[3] / "shared"
PRICES = """\
cost_model:
  hourly_cost: 43750
  visit_cost: 50000
  visit_hours: 2
  office_hourly_cost: 50000
  source: "Tổng cục Thống kê"
"""


def problems(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(DefinitionError) as info:
        catalog_from_text(text, "catalog.yaml")
    return [(p.line, p.path, p.message) for p in info.value.problems]


def test_a_full_catalog_reads() -> None:
    cat = catalog_from_text(
        "format: tinhgon-catalog/1\nname: Kế hoạch 2026\n"
        + PRICES
        + """\
programmes:
  - id: qd-1085-2022
    name: "Quyết định 1085"
    scope: internal
    targets:
      - {metric: count, cut_percent: 20}
  - id: nq-66
    name: NQ 66
    scope: business
    baseline: 2024-12-31
    targets: [{metric: time_limit_days, cut_percent: 30.5}]
"""
    )
    assert cat.name == "Kế hoạch 2026"
    assert cat.prices is not None and cat.prices.hourly_cost == 43750 and cat.prices.source == "Tổng cục Thống kê"
    assert [p.id for p in cat.programmes] == ["qd-1085-2022", "nq-66"]
    assert cat.programmes[1].baseline == date(2024, 12, 31)
    assert cat.programmes[1].targets[0].cut_percent == 30.5


def test_the_shared_catalog_reads() -> None:
    cat = read_catalog_file(SHARED / "catalogs" / "mau" / "catalog.yaml")
    assert cat.prices is not None and cat.prices.visit_hours == 2.5 and cat.programmes == ()


def test_unknown_keys_are_errors_at_their_lines() -> None:
    got = problems("format: tinhgon-catalog/1\ncolour: red\n" + PRICES.replace("  source:", "  sauce: x\n  source:"))
    assert got[0][:2] == (2, "colour") and "khóa lạ «colour»" in got[0][2]
    assert got[1][:2] == (8, "cost_model.sauce")
    with speaking("en"):
        assert problems("format: tinhgon-catalog/1\ncolour: red\n")[0][2] == (
            "unknown key «colour»; allowed keys: format, name, cost_model, programmes"
        )


def test_a_catalog_price_list_gives_all_four_prices_and_a_source() -> None:
    got = problems("format: tinhgon-catalog/1\ncost_model:\n  hourly_cost: 1\n")
    assert {path for _, path, _ in got} == {
        "cost_model.visit_cost",
        "cost_model.visit_hours",
        "cost_model.office_hourly_cost",
        "cost_model.source",
    }
    assert all(line == 3 for line, _, _ in got)
    empty = problems("format: tinhgon-catalog/1\n" + PRICES.replace('"Tổng cục Thống kê"', '"  "'))
    assert [(line, path) for line, path, _ in empty] == [(7, "cost_model.source")]
    assert "nguồn" in empty[0][2]


def test_reason_belongs_to_a_definition_not_to_the_catalog() -> None:
    got = problems("format: tinhgon-catalog/1\n" + PRICES + "  reason: riêng\n")
    assert [(line, path) for line, path, _ in got] == [(8, "cost_model.reason")]
    assert "định nghĩa" in got[0][2] and "source" in got[0][2]


def test_format_and_programme_errors() -> None:
    assert problems("format: tinhgon/1\n")[0][:2] == (1, "format")
    got = problems(
        """\
format: tinhgon-catalog/1
programmes:
  - id: Qd_1
    name: A
    scope: nobody
    baseline: 2024-02-30
    targets: [{metric: count, cut_percent: 0}, {metric: count, cut_percent: 101}, {metric: speed, cut_percent: 5}]
  - {id: ok, name: B, scope: all, targets: []}
  - {id: ok, name: C, scope: all, targets: [{metric: count, cut_percent: 1}]}
"""
    )
    where = [(line, path) for line, path, _ in got]
    assert (3, "programmes[0].id") in where
    assert (5, "programmes[0].scope") in where
    assert (6, "programmes[0].baseline") in where
    assert (7, "programmes[0].targets[0].cut_percent") in where
    assert (7, "programmes[0].targets[1].cut_percent") in where
    assert (7, "programmes[0].targets[1].metric") in where  # count twice
    assert (7, "programmes[0].targets[2].metric") in where  # no such metric
    assert (8, "programmes[1].targets") in where  # at least one target
    assert (9, "programmes[2].id") in where  # the same id twice
    said = {(line, path): message for line, path, message in got}
    assert said[(9, "programmes[2].id")] == "mã chương trình «ok» trùng với chương trình 2 «B»"
    assert said[(7, "programmes[0].targets[1].metric")] == "chỉ tiêu «count» đã có ở chỉ tiêu thứ 1 của chương trình này"
    assert said[(8, "programmes[1].targets")] == "phải có ít nhất 1 mục; ở đây có 0"
    assert said[(5, "programmes[0].scope")] == (
        "chuỗi «nobody» không được dùng ở đây; dùng một trong: internal, public, business, all"
    )


def test_an_empty_file_is_one_error() -> None:
    assert problems("# nothing\n")[0][0] == 1
