"""``catalog.yaml`` (format ``tinhgon-catalog/1``, reform-plan.md section 1):
the catalog's name, its one price list and the programmes it is measured
against. Read and checked like a definition: every problem at its line with
its YAML path, unknown keys included.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .errors import DefinitionError, Problem
from .loader import check_shape, decode, parse_text, read_bytes
from .messages import t
from .schema import Amount, Spec
from .yamlio import Path, describe_value, format_path, line_of

CATALOG_FILE = "catalog.yaml"
CATALOG_FORMAT = "tinhgon-catalog/1"
PRICE_KEYS = ("hourly_cost", "visit_cost", "visit_hours", "office_hourly_cost")
Scope = Literal["internal", "public", "business", "all"]
TargetMetric = Literal[
    "count",
    "annual_compliance_cost",
    "annual_processing_cost",
    "time_limit_days",
    "compliance_cost",
    "lead_time_days",
]
_PROGRAMME_ID = re.compile(r"[a-z0-9-]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def shape() -> str:
    """What a catalog file holds, for a file that holds something else."""
    return t("a catalog is a YAML mapping with keys format, name, cost_model, programmes")


class PriceListSpec(Spec):
    hourly_cost: Amount
    visit_cost: Amount
    visit_hours: Amount
    office_hourly_cost: Amount
    source: str


class TargetSpec(Spec):
    metric: TargetMetric
    cut_percent: float


class ProgrammeSpec(Spec):
    id: str
    name: str
    scope: Scope
    baseline: str | None = None
    targets: Annotated[list[TargetSpec], Field(min_length=1)]


class CatalogSpec(Spec):
    format: Literal["tinhgon-catalog/1"]
    name: str | None = None
    cost_model: PriceListSpec | None = None
    programmes: list[ProgrammeSpec] = Field(default_factory=list)


_NESTED: dict[str, type[BaseModel]] = {
    "cost_model": PriceListSpec,
    "programmes": ProgrammeSpec,
    "targets": TargetSpec,
}


@dataclass(frozen=True, slots=True)
class PriceList:
    """The catalog's prices, one set for every procedure, and where they come from."""

    hourly_cost: float
    visit_cost: float
    visit_hours: float
    office_hourly_cost: float
    source: str


@dataclass(frozen=True, slots=True)
class Target:
    metric: str
    cut_percent: float


@dataclass(frozen=True, slots=True)
class Programme:
    """A simplification programme: ``targets`` over the codes of ``scope``,
    before (the versions in force on ``baseline``, or the first versions) and
    after (the current versions)."""

    id: str
    name: str
    scope: str
    baseline: date | None
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """What ``catalog.yaml`` says; ``programmes`` is empty when it names none."""

    source: str
    name: str | None = None
    prices: PriceList | None = None
    programmes: tuple[Programme, ...] = ()


def catalog_path(folder: str | os.PathLike[str]) -> FsPath:
    return FsPath(folder) / CATALOG_FILE


def is_catalog_file(path: str | os.PathLike[str]) -> bool:
    return FsPath(path).name == CATALOG_FILE


def read_catalog_file(path: str | os.PathLike[str]) -> CatalogFile:
    """Read and check one ``catalog.yaml``.

    Raises :class:`~procedures.errors.ReadError` when it cannot be read and
    :class:`~procedures.errors.DefinitionError` with every problem found."""
    source = os.fspath(path)
    return catalog_from_text(decode(read_bytes(source), source), source)


def catalog_from_text(text: str, source: str = "<catalog>") -> CatalogFile:
    root, _notes = parse_text(text, source, shape)
    if not isinstance(root, dict):
        raise DefinitionError(source, [Problem(line_of(root, ()), "", shape())])
    fmt = root.get("format")
    if "format" in root and fmt != CATALOG_FORMAT:
        raise DefinitionError(
            source,
            [
                Problem(
                    line_of(root, ("format",)),
                    "format",
                    t(
                        "the format of a catalog must be «{format}», not {value}",
                        format=CATALOG_FORMAT,
                        value=describe_value(fmt),
                    ),
                )
            ],
        )
    spec, problems = check_shape(root, source, CatalogSpec, _NESTED)
    problems = [_reworded(p) for p in problems]

    def add(path: Path, message: str) -> None:
        problems.append(Problem(line_of(root, path), format_path(path), message))

    prices = root.get("cost_model")
    if isinstance(prices, dict) and isinstance(prices.get("source"), str) and not prices["source"].strip():
        add(
            ("cost_model", "source"),
            t("source must name where the prices come from (an official figure, saying where it is taken from)"),
        )
    programmes: list[Programme] = []
    seen: dict[str, int] = {}
    raw_programmes = root.get("programmes")
    listed: list[Any] = raw_programmes if isinstance(raw_programmes, list) else []
    for i, raw in enumerate(listed):
        if not isinstance(raw, dict):
            continue
        pid = raw.get("id")
        if isinstance(pid, str):
            if not _PROGRAMME_ID.fullmatch(pid):
                add(("programmes", i, "id"), t("programme id «{id}» may hold only lowercase letters a-z, digits and '-'", id=pid))
            elif pid in seen:
                add(
                    ("programmes", i, "id"),
                    t("programme id «{id}» is already used by {first}", id=pid, first=_programme(listed, seen[pid])),
                )
            else:
                seen[pid] = i
        baseline = raw.get("baseline")
        if isinstance(baseline, str) and _date(baseline) is None:
            add(("programmes", i, "baseline"), t("«{day}» is not a day written YYYY-MM-DD", day=baseline))
        metrics: dict[str, int] = {}
        targets = raw.get("targets")
        for j, target in enumerate(targets if isinstance(targets, list) else []):
            if not isinstance(target, dict):
                continue
            cut = target.get("cut_percent")
            if isinstance(cut, (int, float)) and not isinstance(cut, bool) and not 0 < cut <= 100:
                add(
                    ("programmes", i, "targets", j, "cut_percent"),
                    t("the cut must be above 0 and at most 100 (%), not {cut}", cut=cut),
                )
            metric = target.get("metric")
            if isinstance(metric, str):
                if metric in metrics:
                    add(
                        ("programmes", i, "targets", j, "metric"),
                        t(
                            "target «{metric}» is already set by target {position} of this programme",
                            metric=metric,
                            position=metrics[metric] + 1,
                        ),
                    )
                metrics.setdefault(metric, j)
    if problems or spec is None:
        raise DefinitionError(source, problems or [Problem(line_of(root, ()), "", shape())])
    for p in spec.programmes:
        programmes.append(
            Programme(
                p.id,
                p.name,
                p.scope,
                _date(p.baseline) if p.baseline is not None else None,
                tuple(Target(t.metric, float(t.cut_percent)) for t in p.targets),
            )
        )
    cm = spec.cost_model
    price_list = None
    if cm is not None:
        price_list = PriceList(cm.hourly_cost, cm.visit_cost, cm.visit_hours, cm.office_hourly_cost, cm.source)
    return CatalogFile(source, spec.name, price_list, tuple(programmes))


def _reworded(problem: Problem) -> Problem:
    """A definition's key where the catalog has its own says so."""
    if problem.path == "cost_model.reason":
        return Problem(
            problem.line,
            problem.path,
            t(
                "reason belongs to a definition's cost_model (why that procedure keeps prices of its own); "
                "the catalog's price list names where its prices come from under source"
            ),
        )
    return problem


def _programme(programmes: list[Any], i: int) -> str:
    """Programme ``i``, as messages name it: by its name and position."""
    name = programmes[i].get("name")
    if isinstance(name, str) and name.strip():
        return t("programme {position} «{name}»", position=i + 1, name=name)
    return t("programme {position}", position=i + 1)


def _date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def cost_model_data(prices: PriceList) -> dict[str, Any]:
    """The price list as the report's JSON shows it."""
    return {k: getattr(prices, k) for k in (*PRICE_KEYS, "source")}
