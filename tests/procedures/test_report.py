"""The reform-plan report: totals, the target check, the page and its text."""

from __future__ import annotations

import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from api.cli import main
from procedures import load_path
from procedures.catalog import load_catalog
from procedures.report import (
    REPORT_METRICS,
    TARGETS,
    check_target,
    inline_svg,
    report_data,
    report_html,
    report_markdown,
)
from tests.conftest import DEFINITIONS, definition_text


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def write_procedure(
    folder: Path, code: str, version: int, *, fee: int, days: float, scope: str = "internal", name: str | None = None
) -> Path:
    """A definition whose compliance cost is exactly ``fee`` (the applicant
    spends no time) and whose lead time is exactly ``days``."""
    head = f"format: tinhgon/1\ncode: {code}\nname: {json.dumps(name or f'Thủ tục {code}', ensure_ascii=False)}\nversion: {version}\n"
    if version > 1:
        head += f"based_on: {version - 1}\n"
    text = definition_text(
        f"""\
        scope: {scope}
        annual_volume: 100
        roles: [{{id: dv, name: Đơn vị đề nghị, kind: applicant}}, {{id: cb, name: Cán bộ xử lý, kind: office}}]
        documents: [{{id: kq, name: Kết quả, deliverable: true}}]
        steps:
          - {{id: nop, name: Nộp hồ sơ, role: dv, effort: 0h, fee: {fee}}}
          - {{id: xl, name: Xem xét và giải quyết, role: cb, duration: {days}d, effort: 2h, outputs: [kq]}}
        """,
        head=head,
    )
    path = folder / f"{code.lower()}.v{version}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- totals ------------------------------------------------------------------------
def test_json_totals_are_the_sums_of_compare_over_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    files = cli_json(capsys, "validate", str(DEFINITIONS), "--json")
    assert isinstance(files, list)
    versions: dict[str, list[tuple[int, str]]] = {}
    for f in files:
        versions.setdefault(f["code"], []).append((f["version"], f["file"]))
    sums = {scope: {k: [0.0, 0.0] for k in REPORT_METRICS} for scope in ("all", "internal", "public")}
    for pairs in versions.values():
        oldest, newest = min(pairs)[1], max(pairs)[1]
        result = cli_json(capsys, "compare", oldest, newest, "--json")
        assert isinstance(result, dict)
        scope = load_path(newest).scope
        for k in REPORT_METRICS:
            for group in ("all", scope):
                sums[group][k][0] += result["before"][k]
                sums[group][k][1] += result["after"][k]

    report = cli_json(capsys, "report", str(DEFINITIONS), "--json")
    assert isinstance(report, dict)
    assert report["counts"]["all"] == len(versions)
    for group, by_metric in sums.items():
        for k, (before, after) in by_metric.items():
            total = report["totals"][group][k]
            assert (total["before"], total["after"]) == (pytest.approx(before), pytest.approx(after)), (group, k)


def test_each_procedure_is_oldest_against_newest(capsys: pytest.CaptureFixture[str]) -> None:
    report = cli_json(capsys, "report", str(DEFINITIONS), "--json")
    assert isinstance(report, dict)
    for p in report["procedures"]:
        assert (p["before_version"], p["after_version"]) == (1, 2)
        c = p["change"]["compliance_cost"]
        assert c["before"] == p["before"]["compliance_cost"] and c["after"] == p["after"]["compliance_cost"]
        assert set(p["change"]) == set(REPORT_METRICS)


# -- targets -----------------------------------------------------------------------
def checks(folder: Path) -> dict[str, dict[str, object]]:
    data = report_data(load_catalog([str(folder)]))
    return {c["id"]: dict(c) for c in data["targets"]}


def test_targets_met_above_the_thresholds(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=60_000, days=6)
    got = checks(tmp_path)
    for target in TARGETS:
        assert got[target.id]["met"] is True
        assert got[target.id]["shortfall_points"] == 0.0
    assert got["qd-1085-internal-cost"]["cut_percent"] == pytest.approx(40.0)
    assert got["nq-66-time"]["cut_percent"] == pytest.approx(40.0)


def test_targets_not_met_below_the_thresholds_with_the_shortfall(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=85_000, days=8)
    got = checks(tmp_path)
    assert got["qd-1085-internal-cost"]["met"] is False
    assert got["qd-1085-internal-cost"]["shortfall_points"] == pytest.approx(5.0)
    assert got["nq-66-time"]["met"] is False
    assert got["nq-66-time"]["shortfall_points"] == pytest.approx(10.0)
    assert got["nq-66-cost"]["shortfall_points"] == pytest.approx(15.0)


def test_a_cut_of_exactly_the_target_is_met(tmp_path: Path) -> None:
    # The thresholds are inclusive: "at least 20%" is met by 20%.
    write_procedure(tmp_path, "NB-1", 1, fee=720_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=576_000, days=7)
    got = checks(tmp_path)
    assert got["qd-1085-internal-cost"]["met"] is True
    assert got["nq-66-time"]["met"] is True
    assert got["nq-66-cost"]["met"] is False


def test_decision_1085_counts_internal_procedures_only(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=90_000, days=10)  # internal: 10% cut
    write_procedure(tmp_path, "CONG-1", 1, fee=900_000, days=10, scope="public")
    write_procedure(tmp_path, "CONG-1", 2, fee=100_000, days=10, scope="public")
    catalog = load_catalog([str(tmp_path)])
    internal = check_target(TARGETS[0], catalog)
    assert (internal["procedures"], internal["before"], internal["after"]) == (1, 100_000.0, 90_000.0)
    assert internal["met"] is False and internal["shortfall_points"] == pytest.approx(10.0)
    overall = check_target(TARGETS[2], catalog)
    assert overall["procedures"] == 2 and overall["cut_percent"] == pytest.approx(81.0)
    assert overall["met"] is True


def test_no_internal_procedure_makes_decision_1085_not_applicable(tmp_path: Path) -> None:
    write_procedure(tmp_path, "CONG-1", 1, fee=100_000, days=10, scope="public")
    write_procedure(tmp_path, "CONG-1", 2, fee=50_000, days=5, scope="public")
    got = checks(tmp_path)
    assert got["qd-1085-internal-cost"]["met"] is None and got["qd-1085-internal-cost"]["procedures"] == 0
    assert "Không áp dụng" in report_markdown(report_data(load_catalog([str(tmp_path)])))


def test_a_cost_that_rises_is_a_negative_cut(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=110_000, days=10)
    got = checks(tmp_path)["qd-1085-internal-cost"]
    assert got["cut_percent"] == pytest.approx(-10.0)
    assert got["shortfall_points"] == pytest.approx(30.0)


def test_weighted_lead_time_is_reported_beside_the_sum(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=1, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=1, days=5)
    data = report_data(load_catalog([str(tmp_path)]))
    assert data["weighted_lead_time_days"]["before"] == pytest.approx(10.0)
    assert data["totals"]["all"]["lead_time_days"]["before"] == pytest.approx(10.0)
    assert "không gia quyền" in data["time_aggregation"]


# -- the page ----------------------------------------------------------------------
class Page(HTMLParser):
    """What the checks need of a page: tags with their attributes, the text,
    the style sheets, and which figure each SVG sits in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.svg_in: list[str] = []
        self._figure: list[str] = []
        self._svg_depth = 0
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "figure":
            self._figure.append(a.get("class", ""))
        elif tag == "svg":
            if not self._svg_depth:
                self.svg_in.append(self._figure[-1] if self._figure else "")
            self._svg_depth += 1
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._figure:
            self._figure.pop()
        elif tag == "svg":
            self._svg_depth -= 1
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


@pytest.fixture(scope="module")
def page_html() -> str:
    return report_html(load_catalog([str(DEFINITIONS)]))


@pytest.fixture(scope="module")
def page(page_html: str) -> Page:
    parsed = Page()
    parsed.feed(page_html)
    parsed.close()
    return parsed


def test_page_is_vietnamese_and_prints_on_a4(page: Page) -> None:
    assert ("html", {"lang": "vi"}) in page.tags
    assert ("meta", {"charset": "utf-8"}) in page.tags
    css = "".join(page.styles)
    assert re.search(r"@page\s*\{[^}]*size:\s*A4", css)
    assert "break-before: page" in css
    assert re.search(r"svg\s*\{[^}]*max-width:\s*100%", css)


def test_page_is_self_contained(page: Page, page_html: str) -> None:
    names = {tag for tag, _ in page.tags}
    assert not names & {"link", "script", "img", "iframe", "object", "embed"}
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href"):
            assert attrs.get(key, "#").startswith("#"), (tag, attrs)
    assert not re.search(r"url\(\s*['\"]?(?!#)", page_html)
    assert "@import" not in page_html


def test_page_names_every_procedure_with_its_diacritics(page: Page) -> None:
    text = " ".join(page.text)
    for entry in load_catalog([str(DEFINITIONS)]).entries:
        assert entry.name in text
    assert "Đăng ký khai sinh" in text  # precomposed Vietnamese, not mangled


def test_page_has_the_chart_and_one_compare_diagram_per_procedure(page: Page) -> None:
    count = len(load_catalog([str(DEFINITIONS)]).entries)
    places = Counter(page.svg_in)
    assert places["diagram"] == count
    assert places["chart"] == 1
    assert sum(places.values()) == count + 1


def test_page_ids_are_unique_though_diagrams_share_step_ids(page: Page) -> None:
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert any(i.startswith("p1-step-") for i in ids)


def test_internal_procedures_show_the_officials_side(page_html: str) -> None:
    internal = re.findall(r'<section class="procedure internal".*?</section>', page_html, flags=re.S)
    scopes = [load_path(p).scope for p in DEFINITIONS.glob("*.v2.yaml")]
    assert len(internal) == scopes.count("internal") > 0
    for section in internal:
        assert section.count("card office") == 2
        assert "Giờ công cán bộ" in section and "Chi phí xử lý (đ/hồ sơ)" in section


def test_page_verdicts_and_time_aggregation_are_in_words(page: Page) -> None:
    text = " ".join(page.text)
    assert "Quyết định 1085/QĐ-TTg" in text and "Nghị quyết 66/NQ-CP" in text
    assert re.search(r"Chưa đạt \(thiếu \d+(,\d+)? điểm %\)|Đạt", text)
    assert "không gia quyền theo số hồ sơ" in text


def test_text_from_definitions_is_escaped(tmp_path: Path) -> None:
    name = 'Thủ tục <script>alert("x")</script> & <b>đậm</b> | *'
    write_procedure(tmp_path, "NB-1", 1, fee=100, days=1, name=name)
    write_procedure(tmp_path, "NB-1", 2, fee=50, days=1, name=name)
    catalog = load_catalog([str(tmp_path)])
    html_text = report_html(catalog)
    assert "<script" not in html_text and "<b>đậm" not in html_text
    assert "&lt;script&gt;" in html_text
    parsed = Page()
    parsed.feed(html_text)
    assert name in " ".join(parsed.text)
    md = report_markdown(report_data(catalog))
    assert r"\<script\>" in md and r"\| \*" in md


def test_inline_svg_drops_the_prolog_and_scopes_ids() -> None:
    svg = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg><g id="a" clip-path="url(#c)"><use xlink:href="#a"/></g><text>id="x"</text></svg>'
    got = inline_svg(svg, "p1-")
    assert got.startswith("<svg>")
    assert 'id="p1-a"' in got and "url(#p1-c)" in got and 'href="#p1-a"' in got
    assert '<text>id="x"</text>' in got  # text is not markup


def test_markdown_has_targets_totals_and_every_procedure() -> None:
    catalog = load_catalog([str(DEFINITIONS)])
    md = report_markdown(report_data(catalog))
    assert md.startswith("# Báo cáo")
    assert "## 1. Đối chiếu với mục tiêu cải cách" in md and "### Toàn danh mục" in md
    for entry in catalog.entries:
        assert f"### {entry.code} — " in md


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("processing_cost", 216666.666, "216.667"),
        ("annual_processing_cost", 303333333333.33, "303.333.333.333"),
        ("compliance_cost", -12499.5, "-12.500"),  # round half to even on the whole đồng
        ("office_hours", 4.3333, "4,33"),
        ("lead_time_days", 2.75, "2,75"),
        ("steps", 12, "12"),
        ("within_time_limit", True, "có"),
        ("processing_cost", None, "—"),
    ],
)
def test_metric_text_writes_money_to_the_whole_dong(metric: str, value: object, text: str) -> None:
    from procedures.labels import metric_text

    assert metric_text(metric, value) == text
