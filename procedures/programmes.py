"""Programmes and the versions they compare (reform-plan.md sections 2 and 3).

A programme measures every code of its scope before (the version in force on
its baseline date, or the first version when it has no baseline) and after
(the current version, the highest number). The functions here take any
object with a version's keys, so that they can be checked on small inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, TypeVar

from .catalog_file import Programme, Target


class Version(Protocol):
    """What version selection and scopes read of a definition."""

    @property
    def version(self) -> int: ...
    @property
    def in_force_from(self) -> date | None: ...
    @property
    def abolished(self) -> str | None: ...
    @property
    def scope(self) -> str: ...
    @property
    def business(self) -> bool: ...


V = TypeVar("V", bound=Version)


BUILTIN_PROGRAMMES: tuple[Programme, ...] = (
    Programme(
        "qd-1085-2022",
        "Quyết định 1085/QĐ-TTg ngày 15/9/2022 (thủ tục hành chính nội bộ, giai đoạn 2022-2025)",
        "internal",
        None,
        (Target("count", 20.0), Target("annual_compliance_cost", 20.0)),
    ),
    Programme(
        "nq-66-2025",
        "Nghị quyết 66/NQ-CP ngày 26/3/2025 (thủ tục liên quan đến sản xuất, kinh doanh), mục tiêu năm 2025",
        "business",
        date(2024, 12, 31),
        (Target("time_limit_days", 30.0), Target("annual_compliance_cost", 30.0)),
    ),
    Programme(
        "nq-66-2026",
        "Nghị quyết 66/NQ-CP ngày 26/3/2025 (thủ tục liên quan đến sản xuất, kinh doanh), mục tiêu năm 2026",
        "business",
        date(2024, 12, 31),
        (Target("time_limit_days", 50.0), Target("annual_compliance_cost", 50.0)),
    ),
)
"""Used when ``catalog.yaml`` names no programme."""


def current_version(versions: Sequence[V]) -> V:
    """The highest version number: what the catalog is now."""
    return max(versions, key=lambda v: v.version)


def baseline_version(versions: Sequence[V], baseline: date | None) -> V | None:
    """The version in force on ``baseline`` (None: the code is new since then).

    Without a baseline it is the lowest version number. Otherwise it is the
    dated version latest on or before the day (ties: the higher number), or,
    failing one, the highest undated version: an undated version is in force
    since always, behind every dated one, except an undated abolished one,
    which is the reform being planned and comes after every baseline.
    """
    if baseline is None:
        return min(versions, key=lambda v: v.version)
    dated = [v for v in versions if v.in_force_from is not None and v.in_force_from <= baseline]
    if dated:
        return max(dated, key=lambda v: (v.in_force_from, v.version))
    undated = [v for v in versions if v.in_force_from is None and not v.abolished]
    return max(undated, key=lambda v: v.version) if undated else None


def scope_version(versions: Sequence[V], baseline: V | None) -> V | None:
    """The version a code's scope is read from: its baseline version, or when
    that is absent or abolished its highest version that is not abolished."""
    if baseline is not None and not baseline.abolished:
        return baseline
    alive = [v for v in versions if not v.abolished]
    return max(alive, key=lambda v: v.version) if alive else None


def in_scope(scope: str, versions: Sequence[V], baseline: V | None) -> bool:
    """Whether a code whose versions are ``versions`` falls in ``scope``."""
    if scope == "all":
        return True
    source = scope_version(versions, baseline)
    if source is None:
        return False
    if scope == "business":
        return source.business
    return source.scope == scope
