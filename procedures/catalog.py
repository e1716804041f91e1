"""A folder of definitions as a catalog: every version of each procedure
code, costed under one price list when the folder's ``catalog.yaml`` gives
one (reform-plan.md sections 1 and 2).

Each version's metrics are computed once, when the catalog loads, so that
the report, its targets and its totals read the same figures.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .catalog_file import PRICE_KEYS, CatalogFile, PriceList, catalog_path, is_catalog_file, read_catalog_file
from .errors import DefinitionError, Problem, ReadError, TinhgonError
from .labels import money
from .loader import load_path
from .messages import t
from .metrics import Metrics, metrics
from .model import Definition
from .yamlio import line_of


def definition_files(paths: list[str]) -> list[str]:
    """Files named on a command line, with every ``*.yaml`` of a folder in
    its place (sorted by name), the folder's ``catalog.yaml`` left out: it is
    no definition (reform-plan.md section 1)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(str(f) for f in sorted(Path(p).glob("*.yaml")) if f.is_file() and not is_catalog_file(f))
        else:
            out.append(p)
    return out


def priced(defn: Definition, prices: PriceList | None) -> Definition:
    """``defn`` costed under the catalog's ``prices``: they replace its own
    ``cost_model`` keys, except the keys a definition that gives a
    ``reason`` writes itself."""
    if prices is None:
        return defn
    cm = defn.cost_model
    own = cm.written if cm.reason is not None else frozenset()
    values = {k: getattr(cm, k) if k in own else getattr(prices, k) for k in PRICE_KEYS}
    return dataclasses.replace(defn, cost_model=dataclasses.replace(cm, **values))


class CatalogFiles:
    """The ``catalog.yaml`` beside each definition, read once per folder."""

    def __init__(self) -> None:
        self._by_folder: dict[Path, CatalogFile | None] = {}

    def of_folder(self, folder: str | os.PathLike[str]) -> CatalogFile | None:
        """The folder's catalog file, or None when it has none.

        Raises :class:`DefinitionError` or :class:`ReadError` when it is broken."""
        key = Path(folder).resolve()
        if key not in self._by_folder:
            path = catalog_path(folder)
            self._by_folder[key] = read_catalog_file(path) if path.is_file() else None
        return self._by_folder[key]

    def load(self, path: str | os.PathLike[str]) -> Definition:
        """One definition, costed under its folder's price list."""
        defn = load_path(path)
        cat = self.of_folder(Path(path).parent)
        return priced(defn, cat.prices if cat is not None else None)


def load_priced(path: str | os.PathLike[str]) -> Definition:
    """One definition file, costed as its folder's catalog costs it."""
    return CatalogFiles().load(path)


@dataclass(frozen=True)
class Entry:
    """One procedure code of a catalog: every version, lowest number first,
    and each version's metrics."""

    code: str
    versions: tuple[Definition, ...]
    measured: Mapping[int, Metrics] = field(compare=False, repr=False)

    @property
    def oldest(self) -> Definition:
        return self.versions[0]

    @property
    def newest(self) -> Definition:
        return self.versions[-1]

    @property
    def name(self) -> str:
        """The name of the newest version that is not abolished (an
        abolished version repeats the name, but need not)."""
        alive = [v for v in self.versions if v.abolished is None]
        return (alive[-1] if alive else self.newest).name

    def metrics_of(self, version: Definition) -> Metrics:
        return self.measured[version.version]

    @property
    def before(self) -> Metrics:
        return self.metrics_of(self.oldest)

    @property
    def after(self) -> Metrics:
        return self.metrics_of(self.newest)

    @property
    def scope(self) -> str:
        """``internal`` or ``public``, as the newest version that is not abolished says."""
        alive = [v for v in self.versions if v.abolished is None]
        return (alive[-1] if alive else self.newest).scope


@dataclass(frozen=True)
class PriceException:
    """A definition that keeps prices of its own beside the catalog's, and why."""

    code: str
    version: int
    reason: str
    prices: Mapping[str, float]
    """the keys it keeps, with its values"""


@dataclass(frozen=True)
class Catalog:
    entries: list[Entry]
    errors: list[TinhgonError]
    file: CatalogFile | None = None
    """the ``catalog.yaml`` of the folder reported, when there is one"""

    @property
    def prices(self) -> PriceList | None:
        return self.file.prices if self.file is not None else None

    def exceptions(self) -> list[PriceException]:
        """The versions that keep prices of their own under the catalog's price list."""
        if self.prices is None:
            return []
        out = []
        for entry in self.entries:
            for v in entry.versions:
                cm = v.cost_model
                if cm.reason is not None:
                    kept = {k: float(getattr(cm, k)) for k in PRICE_KEYS if k in cm.written}
                    out.append(PriceException(entry.code, v.version, cm.reason, kept))
        return out

    def price_warnings(self) -> list[str]:
        """Without one price list: a warning when procedures are costed at
        different hourly figures, naming them."""
        if self.prices is not None:
            return []
        hourly: dict[float, list[str]] = {}
        for entry in self.entries:
            for v in entry.versions:
                if v.abolished is None:
                    hourly.setdefault(float(v.cost_model.hourly_cost), []).append(f"{entry.code} v{v.version}")
        if len(hourly) < 2:
            return []
        groups = "; ".join(
            t("{cost}/hour: {procedures}", cost=money(cost), procedures=", ".join(names))
            for cost, names in sorted(hourly.items())
        )
        return [
            t(
                "The procedures are not costed at one hourly cost of the applicant's time ({groups}); "
                "add cost_model to catalog.yaml to cost them alike",
                groups=groups,
            )
        ]

    def merge_warnings(self) -> list[str]:
        """``merged_into`` that names no code of the catalog."""
        codes = {e.code.casefold() for e in self.entries}
        out = []
        for entry in self.entries:
            for v in entry.versions:
                if v.merged_into is not None and v.merged_into.casefold() not in codes:
                    out.append(
                        t(
                            "{code} v{version} is merged into {target}, but the catalog has no procedure of that code",
                            code=entry.code,
                            version=v.version,
                            target=v.merged_into,
                        )
                    )
        return out

    def totals(self, scope: str | None = None) -> dict[str, dict[str, float]]:
        """Sums over the entries (only those of ``scope`` when given) of each
        metric, oldest and newest version. ``lead_time_days`` is the plain sum
        of the procedures' lead times: every procedure counts once, as in the
        per-case cost sums beside it."""
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
    """Load every definition, costed under its folder's price list, and
    group the versions by code (codes that differ only in case are one).
    Errors are collected, not raised; the catalog file reported is that of
    the first folder named that has one."""
    files = CatalogFiles()
    errors: list[TinhgonError] = []
    reported: CatalogFile | None = None
    for p in paths:
        if os.path.isdir(p):
            try:
                cat = files.of_folder(p)
            except (DefinitionError, ReadError) as exc:
                errors.append(exc)
                continue
            reported = reported or cat
    if errors:  # every figure depends on the price list: fix it first
        return Catalog([], errors)
    by_code: dict[str, list[Definition]] = {}
    for f in definition_files(paths):
        try:
            defn = files.load(f)
        except (DefinitionError, ReadError) as exc:
            errors.append(exc)
            continue
        same = by_code.setdefault(defn.code.casefold(), [])
        twin = next((v for v in same if v.version == defn.version), None)
        if twin is not None:
            errors.append(
                DefinitionError(
                    defn.source,
                    [
                        Problem(
                            line_of(defn.data, ("version",)),
                            "version",
                            t(
                                "{other} is version {version} of procedure {code} too",
                                other=twin.source,
                                version=defn.version,
                                code=defn.code,
                            ),
                        )
                    ],
                )
            )
            continue
        same.append(defn)
    return make_catalog([v for versions in by_code.values() for v in versions], reported, errors)


def make_catalog(
    definitions: Iterable[Definition],
    file: CatalogFile | None = None,
    errors: list[TinhgonError] | None = None,
    measure: Callable[[Definition], Metrics] = metrics,
) -> Catalog:
    """A catalog of ``definitions`` (at most one per code and version),
    grouped by code, each version measured once (by ``measure``: the
    service gives the metrics it keeps)."""
    by_code: dict[str, list[Definition]] = {}
    for defn in definitions:
        by_code.setdefault(defn.code.casefold(), []).append(defn)
    entries = []
    for _key, versions in sorted(by_code.items()):
        versions.sort(key=lambda d: d.version)
        entries.append(Entry(versions[-1].code, tuple(versions), {v.version: measure(v) for v in versions}))
    return Catalog(entries, errors or [], file)
