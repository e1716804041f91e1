"""Versions of a code, scopes and target arithmetic (reform-plan.md sections 2-3),
on small inputs built in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from procedures.catalog_file import Programme, Target
from procedures.programmes import BUILTIN_PROGRAMMES, baseline_version, current_version, in_scope, scope_version
from procedures.targets import CodeFigures, target_result


@dataclass(frozen=True)
class V:
    version: int
    in_force_from: date | None = None
    abolished: str | None = None
    scope: str = "public"
    business: bool = False


D = date.fromisoformat
BASE = D("2024-12-31")


# -- versions ------------------------------------------------------------------
def test_without_baseline_the_lowest_version_number() -> None:
    versions = [V(3, D("2020-01-01")), V(2), V(5)]
    assert baseline_version(versions, None) == V(2)
    assert current_version(versions) == V(5)


def test_the_dated_version_latest_on_or_before_the_baseline() -> None:
    versions = [V(1, D("2023-01-01")), V(2, D("2024-12-31")), V(3, D("2025-01-01"))]
    assert baseline_version(versions, BASE) == V(2, D("2024-12-31"))  # on the day counts


def test_dates_decide_not_version_numbers() -> None:
    versions = [V(1, D("2024-06-01")), V(2, D("2023-01-01"))]
    assert baseline_version(versions, BASE) == V(1, D("2024-06-01"))


def test_a_tie_of_dates_goes_to_the_higher_version() -> None:
    versions = [V(1, D("2024-06-01")), V(2, D("2024-06-01")), V(3, D("2024-01-01"))]
    assert baseline_version(versions, BASE) == V(2, D("2024-06-01"))


def test_an_undated_version_is_in_force_since_always_behind_every_dated_one() -> None:
    assert baseline_version([V(1), V(2, D("2024-01-01"))], BASE) == V(2, D("2024-01-01"))
    # the dated one comes into force after the baseline: the undated one is in force
    assert baseline_version([V(1), V(2, D("2025-03-01"))], BASE) == V(1)
    # among undated versions, the highest number
    assert baseline_version([V(1), V(2), V(3, D("2026-01-01"))], BASE) == V(2)


def test_an_undated_abolished_version_comes_after_every_baseline() -> None:
    versions = [V(1), V(2, abolished="bãi bỏ")]
    assert baseline_version(versions, BASE) == V(1)
    assert baseline_version(versions, date(9999, 12, 31)) == V(1)
    assert current_version(versions).abolished


def test_a_dated_abolition_before_the_baseline_is_the_baseline_version() -> None:
    versions = [V(1), V(2, D("2024-01-01"), abolished="bãi bỏ")]
    assert baseline_version(versions, BASE) == V(2, D("2024-01-01"), abolished="bãi bỏ")


def test_a_code_new_since_the_baseline_has_no_baseline_version() -> None:
    assert baseline_version([V(1, D("2025-06-01")), V(2, D("2026-01-01"))], BASE) is None
    assert baseline_version([V(1, abolished="x")], BASE) is None


# -- scopes --------------------------------------------------------------------
def test_scope_is_read_from_the_baseline_version() -> None:
    versions = [V(1, scope="internal"), V(2, scope="public", business=True)]
    base = baseline_version(versions, None)
    assert in_scope("internal", versions, base) and not in_scope("public", versions, base)
    assert not in_scope("business", versions, base) and in_scope("all", versions, base)


def test_scope_of_a_new_or_abolished_baseline_comes_from_the_highest_living_version() -> None:
    versions = [V(1, D("2025-01-01"), business=True), V(2, D("2026-01-01"), business=False), V(3, abolished="x")]
    assert scope_version(versions, None) == V(2, D("2026-01-01"))
    assert not in_scope("business", versions, None)
    gone = [V(1, D("2020-01-01"), abolished="x", scope="internal"), V(2, scope="internal")]
    assert scope_version(gone, gone[0]) == gone[1]
    assert in_scope("internal", gone, gone[0])
    only_abolished = [V(1, abolished="x", scope="internal")]
    assert scope_version(only_abolished, None) is None
    assert not in_scope("internal", only_abolished, None) and in_scope("all", only_abolished, None)


def test_the_built_in_programmes() -> None:
    got = {(p.id, p.scope, p.baseline, t.metric, t.cut_percent) for p in BUILTIN_PROGRAMMES for t in p.targets}
    assert got == {
        ("qd-1085-2022", "internal", None, "count", 20.0),
        ("qd-1085-2022", "internal", None, "annual_compliance_cost", 20.0),
        ("nq-66-2025", "business", BASE, "time_limit_days", 30.0),
        ("nq-66-2025", "business", BASE, "annual_compliance_cost", 30.0),
        ("nq-66-2026", "business", BASE, "time_limit_days", 50.0),
        ("nq-66-2026", "business", BASE, "annual_compliance_cost", 50.0),
    }


# -- target arithmetic ---------------------------------------------------------
PROGRAMME = Programme("p", "P", "all", BASE, (Target("count", 20.0),))


def result(cut: float, *figures: tuple[str, float | None, float | None]):  # type: ignore[no-untyped-def]
    return target_result(PROGRAMME, Target("annual_compliance_cost", cut), [CodeFigures(*f) for f in figures])


def test_cut_met_and_shortfall() -> None:
    r = result(30.0, ("A", 100.0, 80.0), ("B", 100.0, 70.0))
    assert (r["before"], r["after"], r["procedures"]) == (200.0, 150.0, 2)
    assert r["cut_percent"] == pytest.approx(25.0)
    assert r["met"] is False
    assert r["shortfall"] == pytest.approx(150.0 - 140.0)
    assert r["missing"] == [] and r["baseline"] == "2024-12-31" and r["required_cut_percent"] == 30.0


def test_a_cut_of_exactly_the_target_is_met_with_no_shortfall() -> None:
    # 0.1 + 0.2 is not 0.3 in binary: the comparison allows 1e-9
    r = result(70.0, ("A", 1.0, 0.1 + 0.2))
    assert r["met"] is True and r["shortfall"] == 0.0


def test_a_count_shortfall_may_be_a_fraction() -> None:
    r = target_result(PROGRAMME, Target("count", 20.0), [CodeFigures(c, 1.0, 1.0) for c in "ABC"])
    assert r["met"] is False and r["shortfall"] == pytest.approx(3.0 - 2.4)


def test_a_code_lacking_the_figure_makes_the_target_undecided() -> None:
    r = result(20.0, ("B", 100.0, None), ("A", None, 5.0), ("C", 10.0, 1.0))
    assert r["missing"] == ["A", "B"]
    assert (r["before"], r["after"]) == (10.0, 1.0)  # sums over the codes that have it
    assert r["cut_percent"] is None and r["met"] is None and r["shortfall"] is None


def test_nothing_before_gives_no_cut() -> None:
    r = result(20.0, ("A", 0.0, 0.0))
    assert r["cut_percent"] is None and r["met"] is None and r["shortfall"] is None
    empty = result(20.0)
    assert empty["procedures"] == 0 and empty["met"] is None


def test_a_rise_is_a_negative_cut() -> None:
    r = result(20.0, ("A", 100.0, 110.0))
    assert r["cut_percent"] == pytest.approx(-10.0) and r["shortfall"] == pytest.approx(30.0)
