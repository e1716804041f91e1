"""Text for people: numbers written the Vietnamese way, and plain tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

METRIC_LABELS: dict[str, str] = {
    "steps": "Số bước",
    "applicant_steps": "Bước người nộp thực hiện",
    "visits": "Số lần đến trực tiếp",
    "applicant_documents": "Giấy tờ người nộp cung cấp",
    "handoffs": "Số lần chuyển giao",
    "lead_time_days": "Thời gian giải quyết (ngày LV)",
    "sequential_days": "Tổng thời gian các bước (ngày LV)",
    "applicant_hours": "Giờ công người nộp",
    "compliance_cost": "Chi phí tuân thủ (đ/hồ sơ)",
    "annual_burden": "Chi phí tuân thủ hằng năm (đ)",
    "office_hours": "Giờ công cán bộ",
    "processing_cost": "Chi phí xử lý (đ/hồ sơ)",
    "annual_processing_cost": "Chi phí xử lý hằng năm (đ)",
    "within_time_limit": "Trong thời hạn luật định",
}

RULE_LABELS: dict[str, str] = {
    "once-only": "Dữ liệu nhà nước đã có (chỉ cung cấp một lần)",
    "unused-document": "Giấy tờ không ai sử dụng",
    "duplicate-request": "Giấy tờ bị yêu cầu nhiều lần",
    "repeated-review": "Xem xét lặp lại cùng một người",
    "needless-order": "Trình tự bắt buộc không cần thiết",
    "unused-output": "Văn bản lập ra không ai dùng",
    "overlapping-review": "Xem xét chồng chéo giữa các đơn vị",
    "extra-visit": "Đến trực tiếp nhiều lần",
    "approval-chain": "Chuỗi duyệt, ký nhiều cấp",
    "rework-loop": "Trả lại, làm lại",
    "over-time-limit": "Vượt thời hạn luật định",
}


def number(value: Any, digits: int = 2) -> str:
    """``1234567.5`` -> ``1.234.567,5`` (Vietnamese grouping)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "có" if value else "không"
    if isinstance(value, int) or float(value).is_integer():
        text = f"{round(value):,}"
        return text.replace(",", ".")
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "+" if value > 0 else ""
    return f"{sign}{number(round(value, 1), 1)}%"


def width(text: str) -> int:
    """Columns a string takes in a terminal (combining marks take none)."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Aligned columns; ``right`` lists the columns aligned right."""
    if not rows:
        return ""
    cols = max(len(r) for r in rows)
    widths = [max(width(r[c]) if c < len(r) else 0 for r in rows) for c in range(cols)]
    lines = []
    for r in rows:
        cells = []
        for c in range(cols):
            cell = r[c] if c < len(r) else ""
            pad = " " * (widths[c] - width(cell))
            cells.append(pad + cell if c in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
