"""The path to each target not met (reform-plan.md section 4): the open
findings across the catalog that would bring the most toward it, each with
the saving it would bring in the target's own metric, largest first.

What a finding saves, by metric (each step weighted by its share, as the
cost metrics weight it; annual figures need the version's volume):

- annual compliance cost (and per-case compliance cost): an extra visit,
  its ``visit_cost`` and ``visit_hours`` x ``hourly_cost``; a document the
  state already holds (``once-only``) or one asked for twice
  (``duplicate-request``), its preparation (``prep_hours`` x ``hourly_cost``
  + ``prep_cost``); times the cases a year;
- annual processing cost: a repeated or overlapping review, the later
  review's effort x ``office_hourly_cost``, times the cases a year;
- time limit (and lead time): what the lead time would lose, in working
  days: a needless order, with the later step no longer waiting for the
  earlier one (it still waits for what that one waited for); a repeated
  review, with the two merged.

A finding that saves nothing in a target's metric is not listed for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

from .catalog import Catalog
from .durations import HOURS_PER_DAY
from .findings import Finding, find_all
from .merging import MergeState
from .metrics import document_shares
from .model import Definition
from .targets import TargetResult, catalog_programmes, programme_codes

_EPSILON = 1e-9


class TowardFinding(TypedDict):
    code: str
    version: int
    rule: str
    fix: str
    steps: list[str]
    documents: list[str]
    message: str
    saving: float


class TowardTarget(TypedDict):
    programme: str
    name: str
    """the programme's name"""
    metric: str
    shortfall: float | None
    findings: list[TowardFinding]


def _applicant_saving(defn: Definition, finding: Finding) -> float:
    """What the finding costs the applicant per case, VND."""
    cm = defn.cost_model
    if finding.rule == "extra-visit":
        return sum((cm.visit_cost + cm.visit_hours * cm.hourly_cost) * defn.step(s).weight for s in finding.steps)
    if finding.rule in ("once-only", "duplicate-request") and finding.documents:
        doc = defn.document_by_id[finding.documents[0]]
        share = document_shares(defn).get(doc.id, 0.0)
        return (doc.prep_hours * cm.hourly_cost + doc.prep_cost) * share
    return 0.0


def _office_saving(defn: Definition, finding: Finding) -> float:
    """What the later review of a repeated or overlapping pair costs the officials per case, VND."""
    if finding.rule not in ("repeated-review", "overlapping-review") or len(finding.steps) < 2:
        return 0.0
    later = defn.step(finding.steps[-1])
    if defn.role_kind(later) != "office":
        return 0.0
    return later.effort * later.weight * defn.cost_model.office_hourly_cost


def _lead_time_without(defn: Definition, first: str, then: str) -> float:
    """The lead time, in hours, when step ``then`` no longer waits for ``first``
    but still for what ``first`` waits for."""
    preds = defn.predecessors
    a, b = defn.index[first], defn.index[then]
    finish = [0.0] * len(defn.steps)
    for i in defn.order:  # dropping the edge keeps the old order topological
        ps = preds[i] if i != b else tuple(p for p in preds[b] if p != a) + preds[a]
        start = max((finish[p] for p in ps), default=0.0)
        finish[i] = start + defn.steps[i].duration
    return max(finish, default=0.0)


def _time_saving(defn: Definition, finding: Finding) -> float:
    """What the lead time would lose, working days."""
    if finding.rule == "needless-order" and len(finding.steps) == 2:
        after = _lead_time_without(defn, finding.steps[0], finding.steps[1])
    elif finding.rule == "repeated-review" and len(finding.steps) == 2:
        state = MergeState(defn)
        state.merge(defn.index[finding.steps[0]], defn.index[finding.steps[1]])
        after = state.definition().lead_time_hours()
    else:
        return 0.0
    return (defn.lead_time_hours() - after) / HOURS_PER_DAY


def _volume(defn: Definition) -> float | None:
    return float(defn.annual_volume) if defn.annual_volume_given else None


Saving = Callable[[Definition, Finding], float | None]
SAVINGS: dict[str, Saving] = {
    "annual_compliance_cost": lambda d, f: None if _volume(d) is None else _applicant_saving(d, f) * d.annual_volume,
    "compliance_cost": _applicant_saving,
    "annual_processing_cost": lambda d, f: None if _volume(d) is None else _office_saving(d, f) * d.annual_volume,
    "time_limit_days": _time_saving,
    "lead_time_days": _time_saving,
}
"""The saving of a finding in each target metric that findings can move
(``count`` is moved by abolishing or merging procedures, not by a finding)."""


def toward_targets(
    catalog: Catalog, targets: list[TargetResult], find: Callable[[Definition], Sequence[Finding]] = find_all
) -> list[TowardTarget]:
    """For each target not met (or not decided), the findings ranked by what
    they would bring toward it (``find`` gives a version's findings: the
    service gives those it keeps)."""
    programmes = {p.id: p for p in catalog_programmes(catalog)}
    findings_of: dict[tuple[str, int], list[Finding]] = {}
    out: list[TowardTarget] = []
    for check in targets:
        if check["met"] is True or check["metric"] not in SAVINGS or check["programme"] not in programmes:
            continue
        saving_of = SAVINGS[check["metric"]]
        ranked: list[TowardFinding] = []
        for entry, _base, current in programme_codes(programmes[check["programme"]], catalog):
            if current.abolished is not None:
                continue
            key = (entry.code, current.version)
            if key not in findings_of:
                findings_of[key] = list(find(current))
            for f in findings_of[key]:
                saving = saving_of(current, f)
                if saving is None or saving <= _EPSILON:
                    continue
                ranked.append(
                    TowardFinding(
                        code=entry.code,
                        version=current.version,
                        rule=f.rule,
                        fix=f.fix,
                        steps=list(f.steps),
                        documents=list(f.documents),
                        message=f.message,
                        saving=saving,
                    )
                )
        ranked.sort(key=lambda r: (-r["saving"], r["code"], r["rule"], r["steps"], r["documents"]))
        out.append(
            TowardTarget(
                programme=check["programme"],
                name=check["name"],
                metric=check["metric"],
                shortfall=check["shortfall"],
                findings=ranked,
            )
        )
    return out
