"""The reform-plan report as one self-contained HTML page that prints on A4:
the target check, the path to each target not met, the price list, the
totals, a cost chart and each procedure's compare diagram, inline."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from .catalog import Catalog
from .compare_view import compare_diagram
from .diagram import FONT
from .labels import METRIC_LABELS, PRICE_LABELS, RULE_LABELS, metric_text, number, percent
from .report import (
    APPLICANT_SIDE,
    OFFICE_SIDE,
    PROCESS_SIDE,
    REPORT_METRICS,
    SCOPE_WORDS,
    TIME_AGGREGATION,
    TOLERANCE,
    ProcedureReport,
    Report,
    cut_text,
    report_data,
    scope_text,
    target_label,
    target_value_text,
    total_label,
    verdict_text,
)

GOOD, BAD, MUTED = "#15803d", "#b91c1c", "#6b7280"
BEFORE_COLOUR, AFTER_COLOUR = "#9ca3af", "#15803d"
TOWARD_SHOWN = 10
"""Findings shown per target on the page (the JSON lists them all)."""


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
            f"<tr class='{cls}'><td>{_e(check['name'])}<br><span class='muted'>"
            f"giảm {number(check['required_cut_percent'])}% {_e(target_label(check['metric']).lower())}</span></td>"
            f"<td>{_e(scope_text(check))}</td>"
            f"<td class='num'>{target_value_text(check['metric'], check['before'])}</td>"
            f"<td class='num'>{target_value_text(check['metric'], check['after'])}</td>"
            f"<td class='num'>{_e(cut_text(check))}</td>"
            f"<td class='verdict'>{_e(verdict_text(check))}</td></tr>"
        )
    return (
        "<table class='targets'><thead><tr><th>Chương trình, mục tiêu</th><th>Phạm vi</th><th>Trước</th><th>Sau</th>"
        "<th>Đã giảm</th><th>Kết quả</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _toward_html(data: Report) -> str:
    parts = []
    for toward in data["toward_targets"]:
        metric = toward["metric"]
        title = f"{toward['name']}: {target_label(metric).lower()}"
        if not toward["findings"]:
            parts.append(
                f"<h3>{_e(title)}</h3><p class='muted'>Không còn phát hiện nào giúp đạt mục tiêu này; "
                "cần phương án khác (bãi bỏ, hợp nhất thủ tục, rút ngắn thời hạn).</p>"
            )
            continue
        rows = "".join(
            f"<tr><td>{_e(f['code'])} v{f['version']}</td><td>{_e(RULE_LABELS.get(f['rule'], f['rule']))}</td>"
            f"<td>{_e(f['message'])}</td><td class='num'>{target_value_text(metric, f['saving'])}</td></tr>"
            for f in toward["findings"][:TOWARD_SHOWN]
        )
        more = len(toward["findings"]) - TOWARD_SHOWN
        parts.append(
            f"<h3>{_e(title)}</h3>"
            + (f"<p>Còn phải giảm {target_value_text(metric, toward['shortfall'])}.</p>" if toward["shortfall"] else "")
            + "<table class='toward'><thead><tr><th>Thủ tục</th><th>Phát hiện</th><th>Nội dung</th><th>Giảm được</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            + (f"<p class='muted'>Và {more} phát hiện khác (xem báo cáo JSON).</p>" if more > 0 else "")
        )
    return "".join(parts)


def _prices_html(data: Report) -> str:
    cat = data["catalog"]
    prices = cat["cost_model"]
    out = []
    if prices is not None:
        out.append(
            "<p>Một bảng đơn giá cho mọi thủ tục: giờ công người nộp "
            f"{number(prices['hourly_cost'])} đ/giờ, mỗi lần đến trực tiếp {number(prices['visit_cost'])} đ và "
            f"{number(prices['visit_hours'])} giờ, giờ công cán bộ {number(prices['office_hourly_cost'])} đ/giờ. "
            f"Nguồn: {_e(prices['source'])}.</p>"
        )
    for x in cat["exceptions"]:
        kept = ", ".join(f"{PRICE_LABELS.get(k, k)} {number(v)}" for k, v in x["prices"].items()) or "không khóa nào"
        out.append(f"<p class='note'>{_e(x['code'])} v{x['version']} giữ đơn giá riêng ({kept}): {_e(x['reason'])}</p>")
    out += [f"<p class='note'>{_e(w)}</p>" for w in cat["warnings"]]
    return "".join(out)


def _totals_html(data: Report) -> str:
    groups = []
    for name, title in (("all", "Toàn danh mục"), ("internal", "Thủ tục nội bộ"), ("public", "Thủ tục công")):
        count = data["counts"][name]
        if not count or (name != "all" and count == data["counts"]["all"]):
            continue
        body = _change_rows(REPORT_METRICS, data["totals"][name], total_label)
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
    limit = p["time_limit_days"]
    volume_text += f" · thời hạn {number(limit['before'])} → {number(limit['after'])} ngày LV"
    notes = []
    if internal:
        notes.append(
            "Thủ tục nội bộ: bên đề nghị là một đơn vị, nên giờ công và chi phí của cán bộ giải quyết "
            "được xem xét ngang với chi phí tuân thủ của đơn vị đề nghị."
        )
    if p["abolished"] is not None:
        merged = f" Hợp nhất vào thủ tục {_e(p['merged_into'])}." if p["merged_into"] else ""
        notes.append(f"Phiên bản {p['after_version']} bãi bỏ thủ tục: {_e(p['abolished'])}.{merged}")
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
table.overview, table.toward {{ font-size: 8pt; }}
h3 {{ font-size: 10.5pt; margin: .8em 0 .3em; }}
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
    title = data["catalog"]["name"] or "Báo cáo phương án cắt giảm, đơn giản hóa thủ tục hành chính"
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
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p>Danh mục {counts["all"]} thủ tục ({counts["internal"]} thủ tục nội bộ, {counts["public"]} thủ tục công).
Mỗi thủ tục được so sánh giữa phiên bản cũ nhất (trước) và phiên bản mới nhất (sau); chi phí tính theo
mô hình chi phí chuẩn (Standard Cost Model): thời gian × đơn giá + chi phí trực tiếp, cho một hồ sơ, nhân số hồ sơ một năm.</p>
</header>
<h2>1. Đối chiếu với mục tiêu của các chương trình</h2>
{_targets_html(data)}
<p class="muted">Cách tính: {_e(TIME_AGGREGATION)} Mục tiêu đạt khi mức giảm bằng hoặc cao hơn mức yêu cầu;
khi chưa đạt, phần còn thiếu tính theo đơn vị của chỉ tiêu.</p>
{_prices_html(data)}
{_toward_html(data)}
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
