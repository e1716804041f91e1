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
from procedures.catalog import load_catalog, load_priced
from procedures.report import REPORT_METRICS, report_data, summary_text
from procedures.report_markdown import report_markdown
from procedures.report_page import inline_svg, report_html
from tests.conftest import DEFINITIONS, SHARED, definition_text

SHARED_CATALOG = SHARED / "catalogs" / "mau"


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
    assert [f["file"] for f in files if f.get("catalog")] == [str(DEFINITIONS / "catalog.yaml")]
    for f in files:
        if not f.get("catalog"):
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
def targets(folder: Path) -> dict[tuple[str, str], dict[str, object]]:
    data = report_data(load_catalog([str(folder)]))
    return {(t["programme"], t["metric"]): dict(t) for t in data["targets"]}


def test_decision_1085_counts_annual_cost_and_procedures_of_internal_codes(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=60_000, days=6)
    write_procedure(tmp_path, "CONG-1", 1, fee=900_000, days=10, scope="public")
    got = targets(tmp_path)
    cost = got[("qd-1085-2022", "annual_compliance_cost")]
    assert cost["procedures"] == 1  # the public procedure is out of scope
    assert (cost["before"], cost["after"]) == (100_000 * 100, 60_000 * 100)
    assert cost["cut_percent"] == pytest.approx(40.0) and cost["met"] is True and cost["shortfall"] == 0.0
    count = got[("qd-1085-2022", "count")]
    assert (count["before"], count["after"], count["met"]) == (1.0, 1.0, False)
    assert count["shortfall"] == pytest.approx(0.2)  # a fifth of a procedure still to abolish or merge


def test_an_abolished_version_counts_nothing(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=100_000, days=10)
    write_procedure(tmp_path, "NB-2", 1, fee=100_000, days=10)
    (tmp_path / "nb-2.v2.yaml").write_text(
        "format: tinhgon/1\ncode: NB-2\nname: Thủ tục NB-2\nversion: 2\nscope: internal\n"
        "abolished: Bãi bỏ theo quyết định thử\nmerged_into: NB-1\n",
        encoding="utf-8",
    )
    got = targets(tmp_path)
    count = got[("qd-1085-2022", "count")]
    assert (count["before"], count["after"], count["cut_percent"], count["met"]) == (2.0, 1.0, 50.0, True)
    cost = got[("qd-1085-2022", "annual_compliance_cost")]
    assert (cost["before"], cost["after"]) == (2 * 100_000 * 100, 100_000 * 100)
    data = report_data(load_catalog([str(tmp_path)]))
    gone = next(p for p in data["procedures"] if p["code"] == "NB-2")
    assert gone["abolished"] == "Bãi bỏ theo quyết định thử" and gone["merged_into"] == "NB-1"
    assert data["catalog"]["warnings"] == []  # NB-1 is in the catalog


def test_a_business_code_without_time_limit_leaves_the_time_target_undecided(tmp_path: Path) -> None:
    for version, limit in ((1, "time_limit: 10d\n"), (2, "")):
        path = write_procedure(tmp_path, "KD-1", version, fee=100_000, days=3, scope="public")
        path.write_text(
            path.read_text(encoding="utf-8").replace("scope: public\n", "scope: public\nbusiness: true\n" + limit), "utf-8"
        )
    time = targets(tmp_path)[("nq-66-2025", "time_limit_days")]
    assert time["procedures"] == 1
    assert (time["cut_percent"], time["met"], time["shortfall"], time["missing"]) == (None, None, None, ["KD-1"])
    text = summary_text(report_data(load_catalog([str(tmp_path)])))
    assert "thiếu số liệu của KD-1" in text


def test_the_catalog_price_list_replaces_each_definitions_unless_it_gives_a_reason(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(
        "format: tinhgon-catalog/1\nname: Danh mục thử\ncost_model: {hourly_cost: 10000, visit_cost: 0, "
        "visit_hours: 0, office_hourly_cost: 20000, source: Số liệu thử}\n",
        encoding="utf-8",
    )
    for code, own in (("NB-1", ""), ("NB-2", "cost_model: {hourly_cost: 99000, office_hourly_cost: 1, reason: Lý do riêng}\n")):
        path = write_procedure(tmp_path, code, 1, fee=0, days=1)
        text = path.read_text(encoding="utf-8").replace("effort: 0h, fee: 0", "effort: 2h, fee: 0")
        path.write_text(text.replace("annual_volume: 100\n", "annual_volume: 100\n" + own), "utf-8")
    data = report_data(load_catalog([str(tmp_path)]))
    by_code = {p["code"]: p for p in data["procedures"]}
    assert by_code["NB-1"]["before"]["compliance_cost"] == 2 * 10_000
    assert by_code["NB-1"]["before"]["processing_cost"] == 2 * 20_000
    assert by_code["NB-2"]["before"]["compliance_cost"] == 2 * 99_000  # its reason keeps what it writes
    assert by_code["NB-2"]["before"]["processing_cost"] == 2 * 1
    assert data["catalog"]["name"] == "Danh mục thử" and data["catalog"]["cost_model"]["source"] == "Số liệu thử"  # type: ignore[index]
    assert data["catalog"]["exceptions"] == [
        {"code": "NB-2", "version": 1, "reason": "Lý do riêng", "prices": {"hourly_cost": 99000.0, "office_hourly_cost": 1.0}}
    ]
    # analyze of one file of the folder costs it alike
    assert load_priced(tmp_path / "nb-1.v1.yaml").cost_model.hourly_cost == 10_000


def test_without_one_price_list_different_hourly_costs_are_named(tmp_path: Path) -> None:
    for code, cost in (("NB-1", 30_000), ("NB-2", 70_000)):
        path = write_procedure(tmp_path, code, 1, fee=0, days=1)
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                "annual_volume: 100\n", f"annual_volume: 100\ncost_model: {{hourly_cost: {cost}}}\n"
            ),
            "utf-8",
        )
    warnings = report_data(load_catalog([str(tmp_path)]))["catalog"]["warnings"]
    assert len(warnings) == 1 and "30.000 đ/giờ: NB-1 v1" in warnings[0] and "70.000 đ/giờ: NB-2 v1" in warnings[0]


def test_the_path_to_an_unmet_cost_target_ranks_findings_by_their_saving(tmp_path: Path) -> None:
    text = definition_text(
        """\
        scope: internal
        annual_volume: 10
        cost_model: {hourly_cost: 1000, visit_cost: 500, visit_hours: 2}
        roles: [{id: dv, name: Đơn vị, kind: applicant}, {id: cb, name: Cán bộ, kind: office}]
        documents: [{id: kq, name: Kết quả, deliverable: true}]
        steps:
          - {id: nop, name: Nộp, role: dv, visit: true}
          - {id: xl, name: Xử lý, role: cb, duration: 1d, outputs: [kq]}
          - {id: nhan, name: Nhận, role: dv, visit: true, inputs: [kq]}
          - {id: nhan2, name: Nhận lại, role: dv, visit: true, share: 0.5, when: {field: lai, equals: true}, inputs: [kq]}
        fields: [{id: lai, type: boolean}]
        """
    )
    (tmp_path / "nb-1.v1.yaml").write_text(text, encoding="utf-8")
    data = report_data(load_catalog([str(tmp_path)]))
    toward = next(t for t in data["toward_targets"] if t["metric"] == "annual_compliance_cost")
    visits = [f for f in toward["findings"] if f["rule"] == "extra-visit"]
    assert len(visits) == 1
    assert visits[0]["steps"] == ["nhan", "nhan2"]
    assert visits[0]["saving"] == pytest.approx((500 + 2 * 1000) * 1.5 * 10)
    assert all(t["metric"] != "count" for t in data["toward_targets"])  # no finding abolishes a procedure


def test_catalog_targets_equal_sums_of_analyze(capsys: pytest.CaptureFixture[str]) -> None:
    folder = SHARED_CATALOG
    analyses = cli_json(capsys, "analyze", str(folder), "--json")
    assert isinstance(analyses, list)
    by_code: dict[str, list[dict[str, object]]] = {}
    for a in analyses:
        by_code.setdefault(a["procedure"]["code"], []).append(a)
    # Decision 1085 has no baseline: first version against current, scope read from the first.
    first_scope = {d.code: d.scope for d in (load_path(f) for f in sorted(folder.glob("*.v1.yaml")))}
    internal = [sorted(v, key=lambda a: a["procedure"]["version"]) for c, v in by_code.items() if first_scope[c] == "internal"]
    before = sum(v[0]["metrics"]["annual_burden"] for v in internal)
    after = sum(v[-1]["metrics"]["annual_burden"] for v in internal)
    report = cli_json(capsys, "report", str(folder), "--json")
    assert isinstance(report, dict)
    got = next(t for t in report["targets"] if (t["programme"], t["metric"]) == ("qd-1085-2022", "annual_compliance_cost"))
    assert (got["before"], got["after"]) == (pytest.approx(before), pytest.approx(after))
    assert got["procedures"] == len(internal)


def test_weighted_lead_time_is_reported_beside_the_sum(tmp_path: Path) -> None:
    write_procedure(tmp_path, "NB-1", 1, fee=1, days=10)
    write_procedure(tmp_path, "NB-1", 2, fee=1, days=5)
    data = report_data(load_catalog([str(tmp_path)]))
    assert data["weighted_lead_time_days"]["before"] == pytest.approx(10.0)
    assert data["totals"]["all"]["lead_time_days"]["before"] == pytest.approx(10.0)


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
    assert re.search(r"Chưa đạt \(còn phải giảm [\d.,]+\)|Đạt", text)
    assert "chi phí tuân thủ hằng năm" in text


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
    assert md.startswith("# ")
    assert "## 1. Đối chiếu với mục tiêu của các chương trình" in md and "### Toàn danh mục" in md
    for entry in catalog.entries:
        assert f"### {entry.code} — " in md


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("processing_cost", 216666.666, "216.667"),
        ("annual_processing_cost", 303333333333.33, "303.333.333.333"),
        ("compliance_cost", -12499.5, "-12.500"),  # half up (away from zero) on the whole đồng
        ("lead_time_days", 5.625, "5,63"),  # half up on the decimal value, where binary rounding gives 5,62
        ("compliance_cost", 2.5, "3"),
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
