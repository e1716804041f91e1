"""The reform-plan report in Markdown: the same figures as the page, no pictures."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .labels import METRIC_LABELS, PRICE_LABELS, RULE_LABELS, metric_text, number, percent
from .report import (
    APPLICANT_SIDE,
    OFFICE_SIDE,
    PROCESS_SIDE,
    REPORT_METRICS,
    SCOPE_WORDS,
    TIME_AGGREGATION,
    Report,
    cut_text,
    scope_text,
    target_label,
    target_value_text,
    total_label,
    verdict_text,
)

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
    cat = data["catalog"]
    out = [
        f"# {_m(cat['name'] or 'Báo cáo phương án cắt giảm, đơn giản hóa thủ tục hành chính')}",
        "",
        f"Danh mục {counts['all']} thủ tục ({counts['internal']} nội bộ, {counts['public']} công).",
        "",
        "## 1. Đối chiếu với mục tiêu của các chương trình",
        "",
        _md_table(
            ["Chương trình", "Mục tiêu", "Phạm vi", "Trước", "Sau", "Đã giảm", "Kết quả"],
            [
                [
                    _m(c["name"]),
                    f"giảm {number(c['required_cut_percent'])}% {_m(target_label(c['metric']).lower())}",
                    _m(scope_text(c)),
                    target_value_text(c["metric"], c["before"]),
                    target_value_text(c["metric"], c["after"]),
                    cut_text(c),
                    f"**{_m(verdict_text(c))}**",
                ]
                for c in data["targets"]
            ],
            numbers=range(3, 6),
        ),
        "",
        f"Cách tính: {_m(TIME_AGGREGATION)}",
        "",
    ]
    prices = cat["cost_model"]
    if prices is not None:
        out += [
            f"Đơn giá chung: giờ công người nộp {number(prices['hourly_cost'])} đ/giờ, mỗi lần đến trực tiếp "
            f"{number(prices['visit_cost'])} đ và {number(prices['visit_hours'])} giờ, giờ công cán bộ "
            f"{number(prices['office_hourly_cost'])} đ/giờ. Nguồn: {_m(prices['source'])}.",
            "",
        ]
    for x in cat["exceptions"]:
        kept = ", ".join(f"{PRICE_LABELS.get(k, k)} {number(v)}" for k, v in x["prices"].items()) or "không khóa nào"
        out += [f"- {_m(x['code'])} v{x['version']} giữ đơn giá riêng ({kept}): {_m(x['reason'])}"]
    out += [f"- Lưu ý: {_m(w)}" for w in cat["warnings"]]
    for toward in data["toward_targets"]:
        metric = toward["metric"]
        out += ["", f"### Hướng tới: {_m(toward['name'])}, {_m(target_label(metric).lower())}", ""]
        if not toward["findings"]:
            out.append("Không còn phát hiện nào giúp đạt mục tiêu này.")
            continue
        out.append(
            _md_table(
                ["Thủ tục", "Phát hiện", "Nội dung", "Giảm được"],
                [
                    [
                        f"{_m(f['code'])} v{f['version']}",
                        _m(RULE_LABELS.get(f["rule"], f["rule"])),
                        _m(f["message"]),
                        target_value_text(metric, f["saving"]),
                    ]
                    for f in toward["findings"]
                ],
                numbers=range(3, 4),
            )
        )
    out += [
        "",
        "## 2. Tổng hợp danh mục",
    ]
    header = ["Chỉ số", "Trước", "Sau", "Chênh lệch", "Thay đổi"]
    for name, title in (("all", "Toàn danh mục"), ("internal", "Thủ tục nội bộ"), ("public", "Thủ tục công")):
        if counts[name]:
            rows = _md_changes(REPORT_METRICS, data["totals"][name], total_label)
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
            f"{number(p['annual_volume']['after'])} hồ sơ/năm, thời hạn {number(p['time_limit_days']['before'])} → "
            f"{number(p['time_limit_days']['after'])} ngày làm việc."
            + (f" Đã bãi bỏ: {_m(p['abolished'])}." if p["abolished"] else "")
            + (" Thủ tục nội bộ: phía cán bộ giải quyết được nêu trước." if internal else ""),
            "",
            _md_table(header, _md_changes(metrics, p["change"], lambda k: METRIC_LABELS[k])),
        ]
    return "\n".join(out) + "\n"
