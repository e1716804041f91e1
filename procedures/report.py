"""The reform-plan report over a catalog: each procedure before (its oldest
version) and after (its newest), the catalog's totals, and whether those
totals meet the reform targets (:data:`TARGETS`).

Totals are plain sums over the procedures of the per-case figures
(:meth:`Catalog.totals`). Time is aggregated the same way: the total lead
time is the sum of the procedures' lead times, each procedure counting once
whatever its volume, because the reform programmes state their time cut per
procedure (the legal time limit a citizen or unit faces), not per case
handled. The volume-weighted mean lead time, what an average case waits, is
reported beside it for information; the targets are not checked on it.

:func:`report_data` is the ``tinhgon report --json`` object,
:func:`report_html` a self-contained page that prints on A4,
:func:`report_markdown` the same figures in Markdown and
:func:`summary_text` the target check in a few lines.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from .catalog import Catalog
from .compare_view import compare_diagram
from .diagram import FONT
from .labels import METRIC_LABELS, metric_text, number, percent
from .metrics import Metrics, change

PROCESS_SIDE = ("steps", "lead_time_days")
APPLICANT_SIDE = ("visits", "applicant_documents", "compliance_cost", "annual_burden")
OFFICE_SIDE = ("office_hours", "processing_cost", "annual_processing_cost")
REPORT_METRICS: tuple[str, ...] = PROCESS_SIDE + APPLICANT_SIDE + OFFICE_SIDE

# "At least 20%" is met by exactly 20%; sums of fractional days must not
# miss it by a rounding error of the last binary digit.
TOLERANCE = 1e-9

GOOD, BAD, MUTED = "#15803d", "#b91c1c", "#6b7280"
BEFORE_COLOUR, AFTER_COLOUR = "#9ca3af", "#15803d"


@dataclass(frozen=True)
class Target:
    """A reform target: ``metric`` summed over the procedures of ``scope``
    (None: all) must be at least ``cut`` percent lower after than before."""

    id: str
    basis: str
    aim: str
    scope: str | None
    metric: str
    cut: float


TARGETS: tuple[Target, ...] = (
    Target(
        "qd-1085-internal-cost",
        "Quyết định 1085/QĐ-TTg",
        "Giảm tối thiểu 20% chi phí tuân thủ thủ tục hành chính nội bộ",
        "internal",
        "compliance_cost",
        20.0,
    ),
    Target(
        "nq-66-time",
        "Nghị quyết 66/NQ-CP",
        "Giảm tối thiểu 30% thời gian giải quyết thủ tục hành chính",
        None,
        "lead_time_days",
        30.0,
    ),
    Target(
        "nq-66-cost",
        "Nghị quyết 66/NQ-CP",
        "Giảm tối thiểu 30% chi phí tuân thủ thủ tục hành chính",
        None,
        "compliance_cost",
        30.0,
    ),
)

TIME_AGGREGATION = (
    "Tổng thời gian giải quyết là tổng cộng thời gian giải quyết (ngày làm việc, theo đường găng) "
    "của các thủ tục, mỗi thủ tục tính một lần, không gia quyền theo số hồ sơ; "
    "chi phí tuân thủ là tổng chi phí một hồ sơ của các thủ tục. "
    "Thời gian bình quân gia quyền theo số hồ sơ/năm chỉ để tham khảo, không dùng để đối chiếu mục tiêu."
)
SCOPE_WORDS = {"internal": "nội bộ", "public": "công"}


class ProcedureReport(TypedDict):
    code: str
    name: str
    scope: str
    agency: str | None
    before_version: int
    after_version: int
    annual_volume: dict[str, int]
    before: Metrics
    after: Metrics
    change: dict[str, dict[str, Any]]


class TargetCheck(TypedDict):
    id: str
    basis: str
    aim: str
    scope: str
    metric: str
    procedures: int
    required_cut_percent: float
    before: float
    after: float
    cut_percent: float | None
    met: bool | None
    shortfall_points: float | None


class Report(TypedDict):
    procedures: list[ProcedureReport]
    totals: dict[str, dict[str, dict[str, Any]]]
    counts: dict[str, int]
    weighted_lead_time_days: dict[str, Any]
    time_aggregation: str
    targets: list[TargetCheck]


# -- data ------------------------------------------------------------------------
def check_target(target: Target, catalog: Catalog) -> TargetCheck:
    """How far the catalog's totals go towards ``target``.

    ``cut_percent`` is the reduction (positive when lower after);
    ``shortfall_points`` the percentage points still missing (0 when met).
    Both, and ``met``, are None when no procedure of the scope has a
    non-zero figure before, since there is then nothing to cut.
    """
    sums = catalog.totals(target.scope)[target.metric]
    count = sum(1 for e in catalog.entries if target.scope is None or e.scope == target.scope)
    before, after = sums["before"], sums["after"]
    cut = (before - after) / before * 100.0 if count and before else None
    met = None if cut is None else cut >= target.cut - TOLERANCE
    shortfall = None if cut is None else (0.0 if met else target.cut - cut)
    return TargetCheck(
        id=target.id,
        basis=target.basis,
        aim=target.aim,
        scope=target.scope or "all",
        metric=target.metric,
        procedures=count,
        required_cut_percent=target.cut,
        before=before,
        after=after,
        cut_percent=cut,
        met=met,
        shortfall_points=shortfall,
    )


def _weighted_lead_time(catalog: Catalog) -> dict[str, Any]:
    def mean(side: str) -> float | None:
        pairs = [
            (e.oldest.annual_volume, e.before["lead_time_days"])
            if side == "before"
            else (e.newest.annual_volume, e.after["lead_time_days"])
            for e in catalog.entries
        ]
        volume = sum(v for v, _ in pairs)
        return sum(v * t for v, t in pairs) / volume if volume else None

    return change(mean("before"), mean("after"))


def report_data(catalog: Catalog) -> Report:
    """The report's figures (the ``report --json`` object)."""
    procedures: list[ProcedureReport] = []
    for entry in catalog.entries:
        before, after = entry.before, entry.after
        procedures.append(
            ProcedureReport(
                code=entry.code,
                name=entry.name,
                scope=entry.scope,
                agency=entry.newest.agency,
                before_version=entry.oldest.version,
                after_version=entry.newest.version,
                annual_volume={"before": entry.oldest.annual_volume, "after": entry.newest.annual_volume},
                before=before,
                after=after,
                change={k: change(before[k], after[k]) for k in REPORT_METRICS},  # type: ignore[literal-required]
            )
        )
    totals: dict[str, dict[str, dict[str, Any]]] = {}
    for name, scope in (("all", None), ("internal", "internal"), ("public", "public")):
        sums = catalog.totals(scope)
        totals[name] = {k: change(sums[k]["before"], sums[k]["after"]) for k in REPORT_METRICS}
    internal = sum(1 for e in catalog.entries if e.scope == "internal")
    return Report(
        procedures=procedures,
        totals=totals,
        counts={"all": len(catalog.entries), "internal": internal, "public": len(catalog.entries) - internal},
        weighted_lead_time_days=_weighted_lead_time(catalog),
        time_aggregation=TIME_AGGREGATION,
        targets=[check_target(t, catalog) for t in TARGETS],
    )


# -- words -----------------------------------------------------------------------
def verdict_text(check: TargetCheck) -> str:
    """``Đạt``, ``Chưa đạt (thiếu 3,4 điểm %)`` or why it does not apply."""
    if check["met"] is None:
        return "Không áp dụng (không có thủ tục nội bộ)" if not check["procedures"] else "Không áp dụng (không có số liệu trước)"
    if check["met"]:
        return "Đạt"
    return f"Chưa đạt (thiếu {number(round(check['shortfall_points'] or 0.0, 2))} điểm %)"


def _cut_text(check: TargetCheck) -> str:
    cut = check["cut_percent"]
    if cut is None:
        return "—"
    return f"{number(round(cut, 2))}%" if cut >= 0 else f"tăng {number(round(-cut, 2))}%"


def _scope_text(check: TargetCheck) -> str:
    return f"{check['procedures']} thủ tục nội bộ" if check["scope"] == "internal" else f"toàn bộ {check['procedures']} thủ tục"


def _total_label(metric: str) -> str:
    if metric == "lead_time_days":
        return "Tổng thời gian giải quyết (ngày LV, cộng các thủ tục)"
    return METRIC_LABELS[metric]


def summary_text(data: Report) -> str:
    """The target check, one line per target, for a terminal."""
    lines = [f"Báo cáo: {data['counts']['all']} thủ tục ({data['counts']['internal']} nội bộ)."]
    for check in data["targets"]:
        lines.append(
            f"{check['basis']} — {check['aim']} ({_scope_text(check)}): "
            f"{metric_text(check['metric'], check['before'])} → {metric_text(check['metric'], check['after'])}, "
            f"giảm {_cut_text(check)}: {verdict_text(check)}"
        )
    lines.append(TIME_AGGREGATION)
    return "\n".join(lines)


# -- chart -----------------------------------------------------------------------
def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cost_chart(procedures: Sequence[ProcedureReport]) -> str:
    """Compliance cost per case before and after, one pair of bars per
    procedure, as SVG text (text kept as text, set in DejaVu Sans)."""
    # Imported here so the other commands do not pay for loading matplotlib.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n = len(procedures)
    labels = [f"{p['code']} — {_short(p['name'], 36)}" for p in procedures]
    before = [p["before"]["compliance_cost"] for p in procedures]
    after = [p["after"]["compliance_cost"] for p in procedures]
    with matplotlib.rc_context(
        {
            "font.family": [FONT],
            "font.size": 8.5,
            "svg.fonttype": "none",  # text stays text: searchable, and set by the page's fonts
            "svg.hashsalt": "tinhgon-report",  # the same catalog gives the same bytes
        }
    ):
        fig = Figure(figsize=(7.4, 0.38 * n + 1.1), layout="constrained")
        ax = fig.add_subplot()
        ax.barh([i - 0.2 for i in range(n)], before, height=0.4, color=BEFORE_COLOUR, label="Trước (phiên bản cũ nhất)")
        ax.barh([i + 0.2 for i in range(n)], after, height=0.4, color=AFTER_COLOUR, label="Sau (phiên bản mới nhất)")
        for i, p in enumerate(procedures):
            pct = p["change"]["compliance_cost"]["percent"]
            ax.text(after[i], i + 0.2, f"  {percent(pct)}", va="center", fontsize=7.5, color="#111827")
        ax.set_yticks(list(range(n)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max([*before, *after, 1.0]) * 1.12)
        # Full figures (5.000.000) collide under each other; ticks say millions
        # or thousands and the axis names the unit.
        top = max([*before, *after])
        scale, unit = (1e6, "triệu đ") if top >= 1e6 else (1e3, "nghìn đ") if top >= 1e4 else (1.0, "đ")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: number(v / scale)))
        ax.set_xlabel(f"Chi phí tuân thủ ({unit}/hồ sơ)")
        ax.set_title("Chi phí tuân thủ mỗi hồ sơ, trước và sau", loc="left", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="lower right", frameon=False)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return out.getvalue()


_TAG = re.compile(r"<[^>]+>")


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG document ready to sit inside HTML: no XML prolog or doctype,
    and every id (and reference to one) given ``prefix``, since the
    procedures' diagrams reuse the same step ids."""
    body = svg[svg.find("<svg") :] if "<svg" in svg else svg

    def scope(tag: re.Match[str]) -> str:
        text = tag.group(0)
        text = re.sub(r'(\sid=")', rf"\g<1>{prefix}", text)
        return text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')

    return _TAG.sub(scope, body)


# -- HTML ------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct_cell(pct: float | None) -> str:
    cls = "" if pct is None or abs(pct) < TOLERANCE else ("good" if pct < 0 else "bad")
    return f'<td class="num {cls}">{percent(pct)}</td>'


def _change_rows(metrics: Sequence[str], changes: dict[str, dict[str, Any]], label: Callable[[str], str]) -> str:
    rows = []
    for k in metrics:
        c = changes[k]
        rows.append(
            f"<tr><th>{_e(label(k))}</th><td class='num'>{metric_text(k, c['before'])}</td>"
            f"<td class='num'>{metric_text(k, c['after'])}</td>"
            f"<td class='num'>{metric_text(k, c['delta'])}</td>{_pct_cell(c['percent'])}</tr>"
        )
    return "".join(rows)


def _targets_html(data: Report) -> str:
    rows = []
    for check in data["targets"]:
        cls = "na" if check["met"] is None else ("met" if check["met"] else "unmet")
        rows.append(
            f"<tr class='{cls}'><td>{_e(check['aim'])}<br><span class='muted'>{_e(check['basis'])}</span></td>"
            f"<td>{_e(_scope_text(check))}</td>"
            f"<td class='num'>{metric_text(check['metric'], check['before'])}</td>"
            f"<td class='num'>{metric_text(check['metric'], check['after'])}</td>"
            f"<td class='num'>{_e(_cut_text(check))}</td><td class='num'>{number(check['required_cut_percent'])}%</td>"
            f"<td class='verdict'>{_e(verdict_text(check))}</td></tr>"
        )
    return (
        "<table class='targets'><thead><tr><th>Mục tiêu</th><th>Phạm vi</th><th>Trước</th><th>Sau</th>"
        "<th>Đã giảm</th><th>Yêu cầu</th><th>Kết quả</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _totals_html(data: Report) -> str:
    groups = []
    for name, title in (("all", "Toàn danh mục"), ("internal", "Thủ tục nội bộ"), ("public", "Thủ tục công")):
        count = data["counts"][name]
        if not count or (name != "all" and count == data["counts"]["all"]):
            continue
        body = _change_rows(REPORT_METRICS, data["totals"][name], _total_label)
        if name == "all":
            w = data["weighted_lead_time_days"]
            body += (
                "<tr class='info'><th>Thời gian bình quân mỗi hồ sơ, gia quyền theo số hồ sơ/năm (ngày LV, tham khảo)</th>"
                f"<td class='num'>{metric_text('', w['before'])}</td><td class='num'>{metric_text('', w['after'])}</td>"
                f"<td class='num'>{metric_text('', w['delta'])}</td>{_pct_cell(w['percent'])}</tr>"
            )
        groups.append(f"<tbody><tr class='group'><th colspan='5'>{title} ({count} thủ tục)</th></tr>{body}</tbody>")
    return (
        "<table class='totals'><thead><tr><th>Chỉ số</th><th>Trước</th><th>Sau</th><th>Chênh lệch</th><th>Thay đổi</th></tr></thead>"
        + "".join(groups)
        + "</table>"
    )


def _pair(p: ProcedureReport, metric: str) -> str:
    c = p["change"][metric]
    return (
        f"{metric_text(metric, c['before'])} → {metric_text(metric, c['after'])}"
        f"<br><span class='{_tone(c['percent'])}'>{percent(c['percent'])}</span>"
    )


def _tone(pct: float | None) -> str:
    return "muted" if pct is None or abs(pct) < TOLERANCE else ("good" if pct < 0 else "bad")


def _overview_html(data: Report) -> str:
    rows = []
    for i, p in enumerate(data["procedures"], 1):
        rows.append(
            f"<tr><td><a href='#proc-{i}'>{_e(p['code'])}</a><br>"
            f"<span class='muted'>v{p['before_version']} → v{p['after_version']}, "
            f"{SCOPE_WORDS.get(p['scope'], _e(p['scope']))}</span></td><td>{_e(p['name'])}</td>"
            + "".join(
                f"<td class='num'>{_pair(p, k)}</td>"
                for k in ("compliance_cost", "lead_time_days", "office_hours", "processing_cost")
            )
            + "</tr>"
        )
    return (
        "<table class='overview'><thead><tr><th>Mã, phiên bản, loại</th><th>Thủ tục</th>"
        "<th>Chi phí tuân thủ (đ/hồ sơ)</th><th>Thời gian (ngày LV)</th><th>Giờ công cán bộ</th>"
        "<th>Chi phí xử lý (đ/hồ sơ)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _card(p: ProcedureReport, metric: str, office: bool = False) -> str:
    c = p["change"][metric]
    return (
        f"<div class='card{' office' if office else ''}'><div class='label'>{_e(METRIC_LABELS[metric])}</div>"
        f"<div class='value'>{metric_text(metric, c['before'])} → <b>{metric_text(metric, c['after'])}</b></div>"
        f"<div class='{_tone(c['percent'])}'>{percent(c['percent'])}</div></div>"
    )


def _procedure_html(index: int, p: ProcedureReport, diagram_svg: str) -> str:
    internal = p["scope"] == "internal"
    cards = [_card(p, "compliance_cost"), _card(p, "lead_time_days")]
    if internal:
        cards += [_card(p, "office_hours", office=True), _card(p, "processing_cost", office=True)]
    else:
        cards += [_card(p, "visits"), _card(p, "applicant_documents")]
    applicant = "Đơn vị đề nghị (bên gửi)" if internal else "Người nộp hồ sơ"
    groups = (
        ("Quy trình", PROCESS_SIDE, ""),
        (applicant, APPLICANT_SIDE, ""),
        ("Cán bộ, cơ quan giải quyết", OFFICE_SIDE, " office" if internal else ""),
    )
    body = "".join(
        f"<tbody class='side{cls}'><tr class='group'><th colspan='5'>{title}</th></tr>"
        f"{_change_rows(keys, p['change'], lambda k: METRIC_LABELS[k])}</tbody>"
        for title, keys, cls in groups
    )
    volume = p["annual_volume"]
    volume_text = (
        number(volume["after"])
        if volume["before"] == volume["after"]
        else f"{number(volume['before'])} → {number(volume['after'])}"
    )
    notes = []
    if internal:
        notes.append(
            "Thủ tục nội bộ: bên đề nghị là một đơn vị, nên giờ công và chi phí của cán bộ giải quyết "
            "được xem xét ngang với chi phí tuân thủ của đơn vị đề nghị."
        )
    if p["before_version"] == p["after_version"]:
        notes.append("Chỉ có một phiên bản: chưa có phương án đơn giản hóa, số liệu trước và sau như nhau.")
    agency = f" · {_e(p['agency'])}" if p["agency"] else ""
    return f"""
<section class="procedure{" internal" if internal else ""}" id="proc-{index}">
<h2><span class="code">{_e(p["code"])}</span> {_e(p["name"])}</h2>
<p class="meta"><span class="badge{" internal" if internal else ""}">Thủ tục {SCOPE_WORDS.get(p["scope"], _e(p["scope"]))}</span>
 Phiên bản {p["before_version"]} → {p["after_version"]} · {volume_text} hồ sơ/năm{agency}</p>
{"".join(f"<p class='note'>{n}</p>" for n in notes)}
<div class="cards">{"".join(cards)}</div>
<figure class="diagram">{diagram_svg}<figcaption>Sơ đồ so sánh v{p["before_version"]} → v{p["after_version"]}:
bước bỏ hoặc gộp (đỏ), thêm mới (xanh), thay đổi (vàng).</figcaption></figure>
<table class="metrics"><thead><tr><th>Chỉ số</th><th>Trước (v{p["before_version"]})</th><th>Sau (v{p["after_version"]})</th>
<th>Chênh lệch</th><th>Thay đổi</th></tr></thead>{body}</table>
</section>"""


STYLE = f"""
@page {{ size: A4; margin: 14mm 13mm; }}
@page wide {{ size: A4 landscape; margin: 11mm 12mm; }}
* {{ box-sizing: border-box; }}
body {{ font-family: "{FONT}", "Noto Sans", Arial, sans-serif; font-size: 9.5pt; line-height: 1.35; color: #111827;
  margin: 0 auto; padding: 1.5em; max-width: 1200px; }}
h1 {{ font-size: 16pt; margin: 0 0 .3em; }}
h2 {{ font-size: 12.5pt; margin: 1.2em 0 .4em; break-after: avoid; }}
section.procedure h2 {{ margin-top: 0; }}
p {{ margin: .35em 0; }}
.muted {{ color: {MUTED}; }} .good {{ color: {GOOD}; font-weight: bold; }} .bad {{ color: {BAD}; font-weight: bold; }}
/* the table's own border: Chrome's print drops the last cells' right border at the page edge */
table {{ border-collapse: collapse; border: 1px solid #d1d5db; width: 100%; margin: .5em 0 1em; break-inside: auto; }}
thead {{ display: table-header-group; }}
tr, tbody, .card, figure {{ break-inside: avoid; }}
th, td {{ border: 1px solid #d1d5db; padding: 3px 6px; vertical-align: top; text-align: left; }}
thead th {{ background: #f3f4f6; font-weight: bold; }}
tbody th {{ font-weight: normal; }}
td.num {{ text-align: right; white-space: nowrap; }}
tr.group th {{ background: #eef2ff; font-weight: bold; }}
tbody.office tr.group th {{ background: #fef3c7; }}
tr.info th, tr.info td {{ color: {MUTED}; font-style: italic; }}
table.targets tr.met td.verdict {{ color: {GOOD}; font-weight: bold; }}
table.targets tr.unmet td.verdict {{ color: {BAD}; font-weight: bold; }}
table.targets tr.na td.verdict {{ color: {MUTED}; }}
table.overview {{ font-size: 8pt; }}
table.overview td:nth-child(1) {{ white-space: nowrap; }}
a {{ color: inherit; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 8px; margin: .6em 0; }}
.card {{ flex: 1 1 0; min-width: 10em; border: 1px solid #d1d5db; border-radius: 6px; padding: 6px 9px; }}
.card.office {{ border: 2px solid #d97706; background: #fffbeb; }}
.card .label {{ font-size: 8.5pt; color: {MUTED}; }}
.card .value {{ font-size: 11pt; }}
.badge {{ display: inline-block; border-radius: 4px; padding: 0 6px; background: #e5e7eb; font-size: 8.5pt; }}
.badge.internal {{ background: #fde68a; }}
.code {{ color: {MUTED}; font-weight: normal; }}
.note {{ border-left: 3px solid #d97706; padding-left: 8px; }}
figure {{ margin: .6em 0; }}
figcaption {{ font-size: 8pt; color: {MUTED}; }}
svg {{ max-width: 100%; height: auto; }}
figure.diagram svg {{ display: block; width: 100%; max-height: 120mm; }}
figure.chart svg {{ display: block; }}
section.procedure {{ page: wide; break-before: page; }}
@media screen {{ section.procedure {{ border-top: 2px solid #d1d5db; margin-top: 2em; padding-top: 1em; }} }}
@media print {{ body {{ padding: 0; max-width: none; }} }}
"""


def report_html(catalog: Catalog, data: Report | None = None) -> str:
    """The report as one self-contained HTML page: no network, no external
    file; the chart and each procedure's compare diagram inline as SVG."""
    data = data if data is not None else report_data(catalog)
    counts = data["counts"]
    chart = inline_svg(cost_chart(data["procedures"]), "chart-")
    sections = []
    for i, (entry, p) in enumerate(zip(catalog.entries, data["procedures"], strict=True), 1):
        # dot's layout warnings (spline routing) are noise for a report reader.
        svg = compare_diagram(entry.oldest, entry.newest).pipe(format="svg", encoding="utf-8", quiet=True)
        sections.append(_procedure_html(i, p, inline_svg(svg, f"p{i}-")))
    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Báo cáo phương án đơn giản hóa thủ tục hành chính</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Báo cáo phương án cắt giảm, đơn giản hóa thủ tục hành chính</h1>
<p>Danh mục {counts["all"]} thủ tục ({counts["internal"]} thủ tục nội bộ, {counts["public"]} thủ tục công).
Mỗi thủ tục được so sánh giữa phiên bản cũ nhất (trước) và phiên bản mới nhất (sau); chi phí tính theo
mô hình chi phí chuẩn (Standard Cost Model): thời gian × đơn giá + chi phí trực tiếp, cho một hồ sơ, nhân số hồ sơ một năm.</p>
</header>
<h2>1. Đối chiếu với mục tiêu cải cách</h2>
{_targets_html(data)}
<p class="muted">Cách tính: {_e(TIME_AGGREGATION)} Mục tiêu đạt khi mức giảm của tổng bằng hoặc cao hơn mức yêu cầu;
khi chưa đạt, phần còn thiếu tính bằng điểm phần trăm. Mục tiêu của Quyết định 1085/QĐ-TTg tính trên các thủ tục nội bộ,
mục tiêu của Nghị quyết 66/NQ-CP trên toàn danh mục.</p>
<h2>2. Tổng hợp danh mục</h2>
{_totals_html(data)}
<h2>3. Chi phí tuân thủ từng thủ tục</h2>
<figure class="chart">{chart}</figure>
<h2>4. Danh sách thủ tục</h2>
{_overview_html(data)}
{"".join(sections)}
</body>
</html>
"""


# -- Markdown --------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _m(text: object) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], numbers: range | None = None) -> str:
    """A pipe table; the ``numbers`` columns (all but the first by default) align right."""
    numbers = numbers if numbers is not None else range(1, len(header))
    align = ["---:" if i in numbers else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _md_changes(metrics: Sequence[str], changes: dict[str, dict[str, Any]], label: Callable[[str], str]) -> list[list[str]]:
    return [
        [
            label(k),
            metric_text(k, changes[k]["before"]),
            metric_text(k, changes[k]["after"]),
            metric_text(k, changes[k]["delta"]),
            percent(changes[k]["percent"]),
        ]
        for k in metrics
    ]


def report_markdown(data: Report) -> str:
    """The report's figures in Markdown (no pictures: those are in the HTML)."""
    counts = data["counts"]
    out = [
        "# Báo cáo phương án cắt giảm, đơn giản hóa thủ tục hành chính",
        "",
        f"Danh mục {counts['all']} thủ tục ({counts['internal']} nội bộ, {counts['public']} công); "
        "trước: phiên bản cũ nhất, sau: phiên bản mới nhất.",
        "",
        "## 1. Đối chiếu với mục tiêu cải cách",
        "",
        _md_table(
            ["Mục tiêu", "Căn cứ", "Phạm vi", "Trước", "Sau", "Đã giảm", "Yêu cầu", "Kết quả"],
            [
                [
                    _m(c["aim"]),
                    _m(c["basis"]),
                    _scope_text(c),
                    metric_text(c["metric"], c["before"]),
                    metric_text(c["metric"], c["after"]),
                    _cut_text(c),
                    f"{number(c['required_cut_percent'])}%",
                    f"**{verdict_text(c)}**",
                ]
                for c in data["targets"]
            ],
            numbers=range(3, 7),
        ),
        "",
        f"Cách tính: {TIME_AGGREGATION}",
        "",
        "## 2. Tổng hợp danh mục",
    ]
    header = ["Chỉ số", "Trước", "Sau", "Chênh lệch", "Thay đổi"]
    for name, title in (("all", "Toàn danh mục"), ("internal", "Thủ tục nội bộ"), ("public", "Thủ tục công")):
        if counts[name]:
            rows = _md_changes(REPORT_METRICS, data["totals"][name], _total_label)
            if name == "all":
                w = data["weighted_lead_time_days"]
                rows.append(
                    [
                        "_Thời gian bình quân mỗi hồ sơ, gia quyền theo số hồ sơ/năm (tham khảo)_",
                        metric_text("", w["before"]),
                        metric_text("", w["after"]),
                        metric_text("", w["delta"]),
                        percent(w["percent"]),
                    ]
                )
            out += ["", f"### {title} ({counts[name]} thủ tục)", "", _md_table(header, rows)]
    out += ["", "## 3. Từng thủ tục"]
    for p in data["procedures"]:
        internal = p["scope"] == "internal"
        metrics = (*PROCESS_SIDE, *OFFICE_SIDE, *APPLICANT_SIDE) if internal else REPORT_METRICS
        out += [
            "",
            f"### {_m(p['code'])} — {_m(p['name'])}",
            "",
            f"Thủ tục {SCOPE_WORDS.get(p['scope'], _m(p['scope']))}, phiên bản {p['before_version']} → {p['after_version']}, "
            f"{number(p['annual_volume']['after'])} hồ sơ/năm."
            + (" Thủ tục nội bộ: phía cán bộ giải quyết được nêu trước." if internal else ""),
            "",
            _md_table(header, _md_changes(metrics, p["change"], lambda k: METRIC_LABELS[k])),
        ]
    return "\n".join(out) + "\n"
