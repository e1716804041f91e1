"""The reform-plan report over a catalog (reform-plan.md section 4): the price
list used, each procedure before (its oldest version) and after (its
newest), the per-case totals, and the programmes' targets counted the way
the programmes count them (:mod:`procedures.targets`), with the findings
that would bring the most toward each target not met
(:mod:`procedures.toward`).

Per-case totals are plain sums over the procedures, each counting once
whatever its volume; they stay for information. The targets are checked on
annual compliance cost (cost per case x cases a year), legal time limits and
the number of procedures, before (the version in force on a programme's
baseline date) and after (the current version).

:func:`report_data` is the ``tinhgon report --json`` object and
:func:`summary_text` the target check in a few lines; the page is
:func:`procedures.report_page.report_html`, the Markdown
:func:`procedures.report_markdown.report_markdown`.
"""

from __future__ import annotations

from typing import Any, TypedDict

from .catalog import Catalog, Entry
from .catalog_file import cost_model_data
from .labels import METRIC_LABELS, metric_text, number
from .metrics import Metrics, change
from .model import Definition
from .targets import TargetResult, catalog_targets, version_figure
from .toward import TowardTarget, toward_targets

PROCESS_SIDE = ("steps", "lead_time_days")
APPLICANT_SIDE = ("visits", "applicant_documents", "compliance_cost", "annual_burden")
OFFICE_SIDE = ("office_hours", "processing_cost", "annual_processing_cost")
REPORT_METRICS: tuple[str, ...] = PROCESS_SIDE + APPLICANT_SIDE + OFFICE_SIDE

TOLERANCE = 1e-9
"""Percentages this close to zero are shown as no change."""

TIME_AGGREGATION = (
    "Mục tiêu được đối chiếu như các chương trình cải cách tính: chi phí tuân thủ hằng năm "
    "(chi phí một hồ sơ nhân số hồ sơ một năm) cộng trên các thủ tục trong phạm vi, tổng thời hạn giải quyết "
    "theo luật định (ngày làm việc) và số thủ tục; trước là phiên bản có hiệu lực vào ngày mốc của chương trình "
    "(hoặc phiên bản đầu tiên khi chương trình không có ngày mốc), sau là phiên bản hiện hành. "
    "Thủ tục thiếu số liệu không được tính bằng 0: mục tiêu khi đó chưa xác định được. "
    "Các tổng theo một hồ sơ (thời gian giải quyết theo đường găng, chi phí một hồ sơ) chỉ để tham khảo."
)
SCOPE_WORDS = {"internal": "nội bộ", "public": "công"}
PROGRAMME_SCOPE_WORDS = {
    "internal": "thủ tục nội bộ",
    "public": "thủ tục công",
    "business": "thủ tục liên quan đến sản xuất, kinh doanh",
    "all": "thủ tục",
}
TARGET_METRIC_LABELS = {
    "count": "Số thủ tục",
    "annual_compliance_cost": "Chi phí tuân thủ hằng năm (đ)",
    "annual_processing_cost": "Chi phí xử lý hằng năm (đ)",
    "time_limit_days": "Tổng thời hạn giải quyết (ngày LV)",
    "compliance_cost": "Tổng chi phí tuân thủ một hồ sơ (đ)",
    "lead_time_days": "Tổng thời gian giải quyết (ngày LV)",
}


class ProcedureReport(TypedDict):
    code: str
    name: str
    scope: str
    business: bool
    agency: str | None
    before_version: int
    after_version: int
    abolished: str | None
    merged_into: str | None
    annual_volume: dict[str, int | None]
    """cases a year, None where the version does not give it"""
    annual_compliance_cost: dict[str, Any]
    time_limit_days: dict[str, Any]
    before: Metrics
    after: Metrics
    change: dict[str, dict[str, Any]]


class PriceExceptionData(TypedDict):
    code: str
    version: int
    reason: str
    prices: dict[str, float]


class CatalogData(TypedDict):
    name: str | None
    file: str | None
    cost_model: dict[str, Any] | None
    exceptions: list[PriceExceptionData]
    warnings: list[str]


class Report(TypedDict):
    catalog: CatalogData
    procedures: list[ProcedureReport]
    totals: dict[str, dict[str, dict[str, Any]]]
    counts: dict[str, int]
    weighted_lead_time_days: dict[str, Any]
    time_aggregation: str
    targets: list[TargetResult]
    toward_targets: list[TowardTarget]


# -- data ------------------------------------------------------------------------
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


def _figure(entry: Entry, version: Definition, metric: str) -> float | None:
    return version_figure(metric, version, entry.metrics_of(version))


def procedure_report(entry: Entry) -> ProcedureReport:
    before, after = entry.before, entry.after
    oldest, newest = entry.oldest, entry.newest
    return ProcedureReport(
        code=entry.code,
        name=entry.name,
        scope=entry.scope,
        business=any(v.business for v in entry.versions if v.abolished is None),
        agency=newest.agency or oldest.agency,
        before_version=oldest.version,
        after_version=newest.version,
        abolished=newest.abolished,
        merged_into=newest.merged_into,
        annual_volume={
            "before": oldest.annual_volume if oldest.annual_volume_given else None,
            "after": newest.annual_volume if newest.annual_volume_given else None,
        },
        annual_compliance_cost=change(*(_figure(entry, v, "annual_compliance_cost") for v in (oldest, newest))),
        time_limit_days=change(*(_figure(entry, v, "time_limit_days") for v in (oldest, newest))),
        before=before,
        after=after,
        change={k: change(before[k], after[k]) for k in REPORT_METRICS},  # type: ignore[literal-required]
    )


def catalog_data(catalog: Catalog) -> CatalogData:
    prices = catalog.prices
    return CatalogData(
        name=catalog.file.name if catalog.file is not None else None,
        file=catalog.file.source if catalog.file is not None else None,
        cost_model=cost_model_data(prices) if prices is not None else None,
        exceptions=[
            PriceExceptionData(code=x.code, version=x.version, reason=x.reason, prices=dict(x.prices))
            for x in catalog.exceptions()
        ],
        warnings=[*catalog.price_warnings(), *catalog.merge_warnings()],
    )


def report_data(catalog: Catalog) -> Report:
    """The report's figures (the ``report --json`` object)."""
    totals: dict[str, dict[str, dict[str, Any]]] = {}
    for name, scope in (("all", None), ("internal", "internal"), ("public", "public")):
        sums = catalog.totals(scope)
        totals[name] = {k: change(sums[k]["before"], sums[k]["after"]) for k in REPORT_METRICS}
    internal = sum(1 for e in catalog.entries if e.scope == "internal")
    targets = catalog_targets(catalog)
    return Report(
        catalog=catalog_data(catalog),
        procedures=[procedure_report(e) for e in catalog.entries],
        totals=totals,
        counts={"all": len(catalog.entries), "internal": internal, "public": len(catalog.entries) - internal},
        weighted_lead_time_days=_weighted_lead_time(catalog),
        time_aggregation=TIME_AGGREGATION,
        targets=targets,
        toward_targets=toward_targets(catalog, targets),
    )


# -- words -----------------------------------------------------------------------
def target_value_text(metric: str, value: float | None) -> str:
    """A target's figure for reading, in its own unit."""
    if value is None:
        return "—"
    if metric == "count":
        return number(value)
    money = metric in ("annual_compliance_cost", "annual_processing_cost", "compliance_cost")
    return metric_text("compliance_cost" if money else "", value)


def verdict_text(check: TargetResult) -> str:
    """``Đạt``, ``Chưa đạt (còn phải giảm ...)`` or why it cannot be decided."""
    if check["met"] is None:
        if not check["procedures"]:
            return "Không áp dụng (không có thủ tục trong phạm vi)"
        if check["missing"]:
            return f"Chưa xác định được: thiếu số liệu của {', '.join(check['missing'])}"
        return "Không áp dụng (số liệu trước bằng 0)"
    if check["met"]:
        return "Đạt"
    return f"Chưa đạt (còn phải giảm {target_value_text(check['metric'], check['shortfall'])})"


def cut_text(check: TargetResult) -> str:
    cut = check["cut_percent"]
    if cut is None:
        return "—"
    return f"{number(cut, 2)}%" if cut >= 0 else f"tăng {number(-cut, 2)}%"


def scope_text(check: TargetResult) -> str:
    words = PROGRAMME_SCOPE_WORDS.get(check["scope"], check["scope"])
    base = f"so với ngày {_date(check['baseline'])}" if check["baseline"] else "so với phiên bản đầu tiên"
    return f"{check['procedures']} {words}, {base}"


def _date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def target_label(metric: str) -> str:
    return TARGET_METRIC_LABELS.get(metric) or METRIC_LABELS.get(metric, metric)


def summary_text(data: Report) -> str:
    """The target check, one line per target, for a terminal."""
    title = data["catalog"]["name"] or "Báo cáo"
    lines = [f"{title}: {data['counts']['all']} thủ tục ({data['counts']['internal']} nội bộ)."]
    prices = data["catalog"]["cost_model"]
    if prices is not None:
        lines.append(f"Đơn giá giờ công: {number(prices['hourly_cost'])} đ/giờ ({prices['source']}).")
    lines += [f"Lưu ý: {w}" for w in data["catalog"]["warnings"]]
    for check in data["targets"]:
        lines.append(
            f"{check['name']} — giảm {number(check['required_cut_percent'])}% {target_label(check['metric']).lower()} "
            f"({scope_text(check)}): {target_value_text(check['metric'], check['before'])} → "
            f"{target_value_text(check['metric'], check['after'])}, giảm {cut_text(check)}: {verdict_text(check)}"
        )
    lines.append(TIME_AGGREGATION)
    return "\n".join(lines)


def total_label(metric: str) -> str:
    """A per-case total's label: lead times are added up over the procedures."""
    if metric == "lead_time_days":
        return "Tổng thời gian giải quyết (ngày LV, cộng các thủ tục)"
    return METRIC_LABELS[metric]
