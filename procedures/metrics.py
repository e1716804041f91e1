"""Section 7 metrics: what one case costs the applicant and the office.

Computed on the definition alone: every step counts (``when`` ignored), return
outcomes are ignored, and ``after`` edges are the ones written or defaulted,
redundant ones included. Figures are not rounded. The cost is the Standard
Cost Model: time x price + out-of-pocket costs, per case, times volume.
"""

from __future__ import annotations

from typing import Any, TypedDict

from .durations import HOURS_PER_DAY
from .model import Definition


class Metrics(TypedDict):
    steps: int
    applicant_steps: int
    visits: int
    applicant_documents: int
    handoffs: int
    lead_time_days: float
    sequential_days: float
    applicant_hours: float
    compliance_cost: float
    annual_burden: float
    office_hours: float
    processing_cost: float
    annual_processing_cost: float
    within_time_limit: bool | None


METRIC_NAMES: tuple[str, ...] = tuple(Metrics.__annotations__)


def applicant_documents(defn: Definition) -> list[str]:
    """Ids of documents ``from: applicant`` that some step reads, in list order."""
    read = {doc for step in defn.steps for doc in step.inputs}
    return [d.id for d in defn.documents if d.source == "applicant" and d.id in read]


def document_shares(defn: Definition) -> dict[str, float]:
    """Each document's share: the largest share among the steps that read it
    (section 7), so a paper only a minority branch asks for costs that
    branch's fraction of cases."""
    shares: dict[str, float] = {}
    for step in defn.steps:
        for doc in step.inputs:
            shares[doc] = max(shares.get(doc, 0.0), step.weight)
    return shares


def metrics(defn: Definition) -> Metrics:
    """All section 7 metrics of ``defn``.

    >>> from procedures.loader import load_text
    >>> m = metrics(load_text('''
    ... format: tinhgon/1
    ... code: X
    ... name: X
    ... version: 1
    ... roles: [{id: a, name: A, kind: applicant}, {id: o, name: O, kind: office}]
    ... documents: [{id: f, name: F, from: applicant, prep_hours: 1}, {id: r, name: R, deliverable: true}]
    ... steps:
    ...   - {id: s, name: S, role: a, duration: 1h, visit: true, inputs: [f]}
    ...   - {id: t, name: T, role: o, duration: 2d, effort: 2h, inputs: [f], outputs: [r]}
    ... '''))
    >>> m["lead_time_days"], m["applicant_hours"], m["compliance_cost"], m["office_hours"]
    (2.125, 4.0, 210000.0, 2.0)
    """
    if defn.abolished is not None:
        return _abolished()
    cm = defn.cost_model
    roles = defn.role_by_id
    applicant_steps = [s for s in defn.steps if roles[s.role].kind == "applicant"]
    office_steps = [s for s in defn.steps if roles[s.role].kind == "office"]
    visit_steps = [s for s in defn.steps if s.visit]
    visits = len(visit_steps)
    docs = [defn.document_by_id[d] for d in applicant_documents(defn)]
    shares = document_shares(defn)
    handoffs = sum(1 for a, b in defn.edges() if defn.step(a).role != defn.step(b).role)
    lead_time_days = defn.lead_time_hours() / HOURS_PER_DAY
    visit_weight = sum(s.weight for s in visit_steps)
    applicant_hours = (
        sum(s.effort * s.weight for s in applicant_steps)
        + visit_weight * cm.visit_hours
        + sum(d.prep_hours * shares[d.id] for d in docs)
    )
    compliance_cost = (
        applicant_hours * cm.hourly_cost
        + sum(f.amount for f in defn.fees)
        + sum(s.fee * s.weight for s in defn.steps)
        + visit_weight * cm.visit_cost
        + sum(d.prep_cost * shares[d.id] for d in docs)
    )
    office_hours = sum(s.effort * s.weight for s in office_steps)
    processing_cost = office_hours * cm.office_hourly_cost
    within: bool | None = None
    if defn.time_limit is not None:
        within = lead_time_days <= defn.time_limit / HOURS_PER_DAY
    return Metrics(
        steps=len(defn.steps),
        applicant_steps=len(applicant_steps),
        visits=visits,
        applicant_documents=len(docs),
        handoffs=handoffs,
        lead_time_days=lead_time_days,
        sequential_days=sum(s.duration for s in defn.steps) / HOURS_PER_DAY,
        applicant_hours=float(applicant_hours),
        compliance_cost=float(compliance_cost),
        annual_burden=float(compliance_cost) * defn.annual_volume,
        office_hours=float(office_hours),
        processing_cost=float(processing_cost),
        annual_processing_cost=float(processing_cost) * defn.annual_volume,
        within_time_limit=within,
    )


def _abolished() -> Metrics:
    """An abolished version's figures: nothing is asked of anyone any more."""
    return Metrics(
        steps=0,
        applicant_steps=0,
        visits=0,
        applicant_documents=0,
        handoffs=0,
        lead_time_days=0.0,
        sequential_days=0.0,
        applicant_hours=0.0,
        compliance_cost=0.0,
        annual_burden=0.0,
        office_hours=0.0,
        processing_cost=0.0,
        annual_processing_cost=0.0,
        within_time_limit=None,
    )


def change(before: Any, after: Any) -> dict[str, Any]:
    """Absolute and relative change of one metric (``percent`` None when the
    base is zero or the values are not numbers)."""
    if isinstance(before, bool) or isinstance(after, bool) or before is None or after is None:
        return {"before": before, "after": after, "delta": None, "percent": None}
    delta = after - before
    percent = (delta / before * 100.0) if before else None
    return {"before": before, "after": after, "delta": delta, "percent": percent}
