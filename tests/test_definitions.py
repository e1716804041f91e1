"""The real procedures in definitions/: valid, and every v2 is an improvement."""

from __future__ import annotations

from pathlib import Path

import pytest

from procedures import load_path, metrics
from procedures.catalog import load_catalog
from tests.conftest import DEFINITIONS

FILES = sorted(DEFINITIONS.glob("*.v*.yaml"))
REQUIRED_TOPICS = 10


def test_catalog_is_complete() -> None:
    catalog = load_catalog([str(DEFINITIONS)])
    assert catalog.errors == []
    assert len(catalog.entries) >= REQUIRED_TOPICS
    for entry in catalog.entries:
        assert (entry.oldest.version, entry.newest.version) == (1, 2), entry.code


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_definition_is_valid_without_warnings(path: Path) -> None:
    defn = load_path(path)
    assert defn.warnings == ()
    version = int(path.name.rsplit(".", 2)[-2].removeprefix("v"))
    assert defn.version == version
    assert defn.legal_basis, "cite the legal basis"
    assert any(d.deliverable for d in defn.documents)


@pytest.mark.parametrize("v1", sorted(DEFINITIONS.glob("*.v1.yaml")), ids=lambda p: p.name)
def test_v2_is_cheaper_and_no_worse(v1: Path) -> None:
    v2 = v1.with_name(v1.name.replace(".v1.", ".v2."))
    before, after = load_path(v1), load_path(v2)
    assert after.code == before.code and after.based_on == before.version
    m0, m1 = metrics(before), metrics(after)
    assert m1["compliance_cost"] <= m0["compliance_cost"]
    assert m1["processing_cost"] <= m0["processing_cost"]
    assert m1["compliance_cost"] < m0["compliance_cost"] or m1["processing_cost"] < m0["processing_cost"]
    assert m1["lead_time_days"] <= m0["lead_time_days"]


def test_internal_procedures_are_marked() -> None:
    internal = {load_path(p).code for p in FILES if load_path(p).scope == "internal"}
    assert len(internal) >= 4


def test_every_procedure_gives_what_the_programmes_count_under_one_price_list() -> None:
    catalog = load_catalog([str(DEFINITIONS)])
    assert catalog.prices is not None and catalog.prices.source.strip()
    for entry in catalog.entries:
        for v in entry.versions:
            assert v.annual_volume_given and v.time_limit is not None, (entry.code, v.version)
            # a price of its own only with a reason, and never the hourly figure
            assert v.cost_model.reason is not None or not v.cost_model.written, (entry.code, v.version)
            assert "hourly_cost" not in v.cost_model.written, (entry.code, v.version)
            assert v.cost_model.hourly_cost == catalog.prices.hourly_cost
