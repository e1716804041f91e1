"""Words and numbers for Vietnamese readers: metric and rule names, and
numbers grouped the Vietnamese way (``1.234.567,5``). Used by the command
line, the diagrams and the pages alike."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
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

PRICE_LABELS: dict[str, str] = {
    "hourly_cost": "giờ công người nộp (đ/giờ)",
    "visit_cost": "chi phí một lần đến trực tiếp (đ)",
    "visit_hours": "thời gian một lần đến trực tiếp (giờ)",
    "office_hourly_cost": "giờ công cán bộ (đ/giờ)",
}
"""The keys of a price list (``cost_model``), as people read them."""

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


def half_up(value: float | int, digits: int) -> Decimal:
    """``value`` rounded half up (away from zero) on its decimal value, the
    way people round: 5.625 -> 5.63, where binary rounding gives 5.62.
    Display only; the figures themselves keep every digit."""
    # repr of the float: its shortest decimal (numpy's floats too, whose repr names the type)
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))
    return exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def number(value: Any, digits: int = 2) -> str:
    """``1234567.5`` -> ``1.234.567,5`` (Vietnamese grouping), at most
    ``digits`` decimals, rounded half up.

    >>> number(5.625), number(1234567.5), number(-12499.5, 0), number(3)
    ('5,63', '1.234.567,5', '-12.500', '3')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "có" if value else "không"
    shown = half_up(value, digits)
    if shown == shown.to_integral_value():
        return f"{int(shown):,}".replace(",", ".")
    text = f"{shown:,f}".rstrip("0").rstrip(".")
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


MONEY_METRICS = frozenset({"compliance_cost", "annual_burden", "processing_cost", "annual_processing_cost"})
"""The metrics counted in đồng"""


def metric_text(metric: str, value: Any) -> str:
    """A metric's value for reading: money to the whole đồng (the metrics
    keep their fractions, so sums and percentages stay exact), other
    figures to two decimals; ``—`` for none."""
    if value is None:
        return "—"
    return number(value, 0) if metric in MONEY_METRICS else number(value)


def percent(value: float | None) -> str:
    """``-31.86`` -> ``-31,9%``; ``—`` when there is no base to compare with."""
    if value is None:
        return "—"
    sign = "+" if value > 0 else ""
    return f"{sign}{number(value, 1)}%"


def money(amount: float) -> str:
    """``514000`` -> ``514.000 đ``."""
    return f"{number(amount, 0)} đ"


def duration_words(hours: float | None) -> str:
    """Working time in words: ``"2 ngày làm việc"``, ``"1 giờ 30 phút"``,
    ``"1 ngày làm việc 4 giờ"``; ``—`` for none.

    >>> duration_words(20), duration_words(1.5), duration_words(0)
    ('2 ngày làm việc 4 giờ', '1 giờ 30 phút', '0 giờ')
    """
    if hours is None:
        return "—"
    minutes = round(hours * 60)
    days, minutes = divmod(minutes, 8 * 60)
    whole_hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(f"{number(days)} ngày làm việc")
    if whole_hours:
        parts.append(f"{whole_hours} giờ")
    if minutes:
        parts.append(f"{minutes} phút")
    return " ".join(parts) or "0 giờ"
