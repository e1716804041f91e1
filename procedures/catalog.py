"""A folder of definitions as a catalog: each procedure's oldest and newest
version, what each costs, and what simplification saved."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DefinitionError, ReadError, TinhgonError
from .loader import load_path
from .metrics import Metrics, metrics
from .model import Definition


def definition_files(paths: list[str]) -> list[str]:
    """Files named on a command line, with every ``*.yaml`` of a folder in
    its place (sorted by name)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(str(f) for f in sorted(Path(p).glob("*.yaml")) if f.is_file())
        else:
            out.append(p)
    return out


@dataclass(frozen=True)
class Entry:
    """One procedure code of a catalog: its first and latest versions."""

    code: str
    name: str
    oldest: Definition
    newest: Definition

    @property
    def before(self) -> Metrics:
        return metrics(self.oldest)

    @property
    def after(self) -> Metrics:
        return metrics(self.newest)

    @property
    def scope(self) -> str:
        """``internal`` or ``public``, as the newest version says."""
        return self.newest.scope


@dataclass(frozen=True)
class Catalog:
    entries: list[Entry]
    errors: list[TinhgonError]

    def totals(self, scope: str | None = None) -> dict[str, dict[str, float]]:
        """Sums over the entries (only those of ``scope`` when given) of each
        metric, before and after. ``lead_time_days`` is the plain sum of the
        procedures' lead times: every procedure counts once, as in the per-case
        cost sums beside it."""
        entries = [e for e in self.entries if scope is None or e.scope == scope]
        keys = (
            "steps",
            "visits",
            "applicant_documents",
            "lead_time_days",
            "compliance_cost",
            "annual_burden",
            "office_hours",
            "processing_cost",
            "annual_processing_cost",
        )
        out: dict[str, dict[str, float]] = {}
        for key in keys:
            out[key] = {
                "before": float(sum(e.before[key] for e in entries)),  # type: ignore[literal-required]
                "after": float(sum(e.after[key] for e in entries)),  # type: ignore[literal-required]
            }
        return out


def load_catalog(paths: list[str]) -> Catalog:
    """Load every definition; group by code (errors are collected, not raised)."""
    by_code: dict[str, list[Definition]] = {}
    errors: list[TinhgonError] = []
    for f in definition_files(paths):
        try:
            defn = load_path(f)
        except (DefinitionError, ReadError) as exc:
            errors.append(exc)
            continue
        by_code.setdefault(defn.code, []).append(defn)
    entries = []
    for code, versions in sorted(by_code.items()):
        versions.sort(key=lambda d: d.version)
        entries.append(Entry(code, versions[-1].name, versions[0], versions[-1]))
    return Catalog(entries, errors)
