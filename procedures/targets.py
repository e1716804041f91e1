"""Targets measured on a catalog (reform-plan.md section 3).

Each target sums one metric over the codes of its programme's scope, before
(baseline versions) and after (current versions), and says whether the cut
is at least the one required. A code that lacks the figure in either version
makes the target undecided (``met`` null, the code in ``missing``): a plan
never counts an unknown figure as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from .catalog import Catalog, Entry
from .catalog_file import Programme, Target
from .durations import HOURS_PER_DAY
from .metrics import Metrics
from .model import Definition
from .programmes import BUILTIN_PROGRAMMES, baseline_version, current_version, in_scope

TOLERANCE = 1e-9
"""A cut of exactly the target is met, whatever the last binary digit says."""


class TargetResult(TypedDict):
    programme: str
    name: str
    scope: str
    metric: str
    baseline: str | None
    required_cut_percent: float
    procedures: int
    before: float
    after: float
    cut_percent: float | None
    met: bool | None
    shortfall: float | None
    missing: list[str]


@dataclass(frozen=True, slots=True)
class CodeFigures:
    """One code's figure before and after; None when the version lacks it."""

    code: str
    before: float | None
    after: float | None


def target_result(programme: Programme, target: Target, figures: Sequence[CodeFigures]) -> TargetResult:
    """The sums and the verdict of ``target`` over the codes in scope."""
    missing = sorted(f.code for f in figures if f.before is None or f.after is None)
    known = [f for f in figures if f.before is not None and f.after is not None]
    before = float(sum(f.before for f in known if f.before is not None))
    after = float(sum(f.after for f in known if f.after is not None))
    cut = (before - after) / before * 100.0 if before and not missing else None
    met = None if cut is None else cut >= target.cut_percent - TOLERANCE
    shortfall = None if met is None else max(0.0, after - before * (1.0 - target.cut_percent / 100.0))
    return TargetResult(
        programme=programme.id,
        name=programme.name,
        scope=programme.scope,
        metric=target.metric,
        baseline=programme.baseline.isoformat() if programme.baseline else None,
        required_cut_percent=target.cut_percent,
        procedures=len(figures),
        before=before,
        after=after,
        cut_percent=cut,
        met=met,
        shortfall=shortfall,
        missing=missing,
    )


def version_figure(metric: str, version: Definition | None, measured: Metrics | None) -> float | None:
    """One version's figure for a target metric (reform-plan.md section 3);
    None when the version lacks the data. A code that did not exist yet
    (``version`` None) and an abolished version count 0 and lack nothing."""
    if version is None or version.abolished is not None or measured is None:
        return 0.0
    if metric == "count":
        return 1.0
    if metric == "annual_compliance_cost":
        return measured["annual_burden"] if version.annual_volume_given else None
    if metric == "annual_processing_cost":
        return measured["annual_processing_cost"] if version.annual_volume_given else None
    if metric == "time_limit_days":
        return None if version.time_limit is None else version.time_limit / HOURS_PER_DAY
    if metric in ("compliance_cost", "lead_time_days"):
        return float(measured[metric])  # type: ignore[literal-required]
    raise ValueError(f"unknown target metric {metric!r}")


def programme_codes(programme: Programme, catalog: Catalog) -> list[tuple[Entry, Definition | None, Definition]]:
    """The codes in the programme's scope: each entry with its baseline
    version (None: new since the baseline) and its current version."""
    out = []
    for entry in catalog.entries:
        baseline = baseline_version(entry.versions, programme.baseline)
        if in_scope(programme.scope, entry.versions, baseline):
            out.append((entry, baseline, current_version(entry.versions)))
    return out


def catalog_programmes(catalog: Catalog) -> tuple[Programme, ...]:
    """The programmes the catalog file names, else the built-in ones."""
    named = catalog.file.programmes if catalog.file is not None else ()
    return tuple(named) or BUILTIN_PROGRAMMES


def catalog_targets(catalog: Catalog, programmes: Sequence[Programme] | None = None) -> list[TargetResult]:
    """Every target of ``programmes`` (the catalog file's, else the built-in
    ones) measured on the catalog, in the order the programmes give them."""
    if programmes is None:
        programmes = catalog_programmes(catalog)
    results = []
    for programme in programmes:
        codes = programme_codes(programme, catalog)
        for target in programme.targets:
            figures = [
                CodeFigures(
                    entry.code,
                    version_figure(target.metric, base, entry.metrics_of(base) if base is not None else None),
                    version_figure(target.metric, now, entry.metrics_of(now)),
                )
                for entry, base, now in codes
            ]
            results.append(target_result(programme, target, figures))
    return results
