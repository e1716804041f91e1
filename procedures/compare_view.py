"""Before and after in one picture, and as a page.

:func:`compare_diagram` draws both versions of a procedure as one graph:
steps removed in red and faded (merged ones say into which step), added in
green, changed in amber with what changed; ``after`` edges removed dashed
red, added green. In SVG the nodes carry the classes ``removed``, ``added``,
``changed`` or ``merged`` and the edges ``edge-removed`` or ``edge-added``.

:func:`compare_page` is a self-contained HTML page (no network, no external
file): the picture, the metrics before and after with absolute and % change,
and the fixes the simplifier applies to the older version, each in words.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import graphviz

from .compare import compare, time_limit_text
from .diagram import FONT, lanes
from .dottext import cell, text
from .durations import format_hours
from .findings import repeated_review
from .labels import METRIC_LABELS, metric_text, number, percent
from .metrics import METRIC_NAMES
from .model import Definition, Step
from .simplify import simplify

ADDED, REMOVED, CHANGED = "#bbf7d0", "#fee2e2", "#fde68a"
GREEN, RED, AMBER = "#15803d", "#b91c1c", "#b45309"
CHANGE_WORDS = {
    "name": "tên",
    "role": "người thực hiện",
    "kind": "loại",
    "duration": "thời gian",
    "effort": "công sức",
    "visit": "đến trực tiếp",
    "fee": "phí",
    "inputs": "giấy tờ đầu vào",
    "outputs": "kết quả",
    "after": "trình tự",
    "when": "điều kiện",
    "outcomes": "quyết định",
}


def merged_into(before: Definition, after: Definition) -> dict[str, str]:
    """Removed steps that a repeated-review merge folded into a step that remains."""
    kept = set(after.index)
    out: dict[str, str] = {}
    for finding in repeated_review(before):
        first, again = finding.steps
        if again not in kept and first in kept and again not in out:
            out[again] = first
    return out


def _label(step: Step, note: str | None) -> str:
    rows = [
        f"<TR><TD><B>{cell(step.name)}</B></TD></TR>",
        f'<TR><TD><FONT POINT-SIZE="9">{cell(format_hours(step.duration))}</FONT></TD></TR>',
    ]
    if note:
        rows.append(f'<TR><TD><FONT POINT-SIZE="9"><I>{cell(note)}</I></FONT></TD></TR>')
    return "<" + '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"


def compare_diagram(before: Definition, after: Definition) -> graphviz.Digraph:
    """Both versions in one picture (see the module's description)."""
    result = compare(before, after)
    merged = merged_into(before, after)
    changed = {c["id"]: c["fields"] for c in result["steps"]["changed"]}
    added, removed = set(result["steps"]["added"]), set(result["steps"]["removed"])
    m0, m1 = result["before"], result["after"]
    dot = graphviz.Digraph(name=text(f"{after.code}-compare"))
    title = (
        f"{after.code}: v{before.version} → v{after.version} — {after.name}\n"
        f"Thời gian giải quyết {number(m0['lead_time_days'])} → {number(m1['lead_time_days'])} ngày · "
        f"Chi phí tuân thủ {metric_text('compliance_cost', m0['compliance_cost'])} → {metric_text('compliance_cost', m1['compliance_cost'])} đ/hồ sơ"
    )
    dot.attr("graph", rankdir="LR", fontname=FONT, label=text(title), labelloc="t", fontsize="16", newrank="true")
    dot.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", fillcolor="white")
    dot.attr("edge", fontname=FONT, fontsize="9", color="#6b7280")
    role_name = {r.id: r.name for r in (*before.roles, *after.roles)}
    order = lanes(after) + [r for r in lanes(before) if r not in lanes(after)]
    steps: list[tuple[Step, str]] = [(s, "after") for s in after.steps] + [(s, "before") for s in before.steps if s.id in removed]
    for lane_index, role in enumerate(order):
        with dot.subgraph(name=f"cluster_lane_{lane_index}") as lane:
            lane.attr(
                label=text(role_name.get(role, role)),
                style="filled",
                fillcolor="#f9fafb",
                color="#9ca3af",
                labeljust="l",
                id=text(f"lane-{role}"),
                **{"class": "lane"},
            )
            for step, side in steps:
                if step.role != role:
                    continue
                attrs: dict[str, str] = {"id": text(f"step-{step.id}")}
                if side == "before" and step.id in merged:
                    note, cls = f"gộp vào bước “{after.step(merged[step.id]).name}”", "removed merged"
                    attrs.update(fillcolor=REMOVED, color=RED, fontcolor="#6b7280", style="rounded,filled,dashed")
                elif side == "before":
                    note, cls = "bỏ", "removed"
                    attrs.update(fillcolor=REMOVED, color=RED, fontcolor="#6b7280", style="rounded,filled,dashed")
                elif step.id in added:
                    note, cls = "mới", "added"
                    attrs.update(fillcolor=ADDED, color=GREEN, penwidth="2")
                elif step.id in changed:
                    words = ", ".join(CHANGE_WORDS.get(k, k) for k in changed[step.id])
                    note, cls = f"thay đổi: {words}", "changed"
                    attrs.update(fillcolor=CHANGED, color=AMBER, penwidth="2")
                else:
                    note, cls = None, "unchanged"
                attrs["class"] = f"step {cls}"
                lane.node(f"step-{step.id}", _label(step, note), **attrs)
    both = {tuple(e) for e in (*before.edges(),)} & {tuple(e) for e in after.edges()}
    for a, b in after.edges():
        if (a, b) in both:
            dot.edge(f"step-{a}", f"step-{b}")
        else:
            dot.edge(f"step-{a}", f"step-{b}", color=GREEN, penwidth="2", **{"class": "edge-added"})
    for a, b in result["edges"]["removed"]:
        dot.edge(f"step-{a}", f"step-{b}", color=RED, style="dashed", constraint="false", **{"class": "edge-removed"})
    legend = [
        (ADDED, "bước mới"),
        (CHANGED, "bước thay đổi"),
        (REMOVED, "bước bỏ hoặc gộp"),
    ]
    rows = "".join(f'<TR><TD BGCOLOR="{c}" WIDTH="18"> </TD><TD ALIGN="LEFT">{t}</TD></TR>' for c, t in legend)
    rows += f'<TR><TD><FONT COLOR="{GREEN}">━━</FONT></TD><TD ALIGN="LEFT">trình tự mới</TD></TR>'
    rows += f'<TR><TD><FONT COLOR="{RED}">╌╌</FONT></TD><TD ALIGN="LEFT">trình tự bỏ</TD></TR>'
    dot.node(
        "legend",
        '<<TABLE BORDER="1" CELLBORDER="0" BGCOLOR="white"><TR><TD COLSPAN="2"><B>Chú giải</B></TD></TR>' + rows + "</TABLE>>",
        shape="plaintext",
        style="",
        id="legend",
        fontsize="9",
    )
    return dot


def compare_page(before: Definition, after: Definition, svg: str) -> str:
    """A self-contained HTML page: the picture, the metrics and the fixes."""
    result = compare(before, after)
    changes: Mapping[str, Mapping[str, object]] = result["changes"]
    rows = []
    for key in METRIC_NAMES:
        c = changes[key]
        raw = c["percent"]
        pct = float(raw) if isinstance(raw, (int, float)) else None
        pct_text = percent(pct)
        cls = "" if pct is None or pct == 0 else ("good" if pct < 0 else "bad")
        rows.append(
            f"<tr><th>{html.escape(METRIC_LABELS[key])}</th><td>{metric_text(key, c['before'])}</td>"
            f"<td>{metric_text(key, c['after'])}</td><td>{metric_text(key, c['delta'])}</td><td class='{cls}'>{pct_text}</td></tr>"
        )
    applied = simplify(before).applied
    fixes = "".join(f"<li><b>{html.escape(f.rule)}</b>: {html.escape(f.message)}</li>" for f in applied)
    steps = result["steps"]
    changed = "".join(
        f"<li>{html.escape(after.step(c['id']).name)}: {html.escape(', '.join(CHANGE_WORDS.get(k, k) for k in c['fields']))}</li>"
        for c in steps["changed"]
    )
    removed = "".join(f"<li>{html.escape(before.step(s).name)}</li>" for s in steps["removed"])
    added = "".join(f"<li>{html.escape(after.step(s).name)}</li>" for s in steps["added"])
    svg_body = svg[svg.find("<svg") :] if "<svg" in svg else svg
    return f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8">
<title>{html.escape(after.code)}: so sánh v{before.version} và v{after.version}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 1.5em; color: #111827; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #d1d5db; padding: 4px 8px; }}
td {{ text-align: right; }} th {{ text-align: left; font-weight: normal; }}
td.good {{ color: {GREEN}; font-weight: bold; }} td.bad {{ color: {RED}; font-weight: bold; }}
.picture svg {{ max-width: 100%; height: auto; }}
@media print {{ @page {{ size: A4 landscape; margin: 12mm; }} .picture {{ page-break-after: always; }} }}
</style></head><body>
<h1>{html.escape(after.code)} — {html.escape(after.name)}: phiên bản {before.version} → {after.version}</h1>
<div class="picture">{svg_body}</div>
<h2>Chỉ số trước và sau</h2>
<table><tr><th>Chỉ số</th><th>v{before.version}</th><th>v{after.version}</th><th>Chênh lệch</th><th>%</th></tr>
{"".join(rows)}</table>
<p class="limit">{html.escape(time_limit_text(result["time_limit"], before, after))}</p>
<h2>Thay đổi các bước</h2>
<p>Bỏ hoặc gộp:</p><ul>{removed or "<li>—</li>"}</ul>
<p>Thêm mới:</p><ul>{added or "<li>—</li>"}</ul>
<p>Thay đổi:</p><ul>{changed or "<li>—</li>"}</ul>
<h2>Các sửa tự động tinhgon áp dụng cho phiên bản {before.version}</h2>
<ol>{fixes or "<li>không có</li>"}</ol>
</body></html>
"""
