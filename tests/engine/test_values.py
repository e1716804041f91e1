"""Values the engine bounds, on SQLite and PostgreSQL: integer case data in
64 bits, stored exactly; a case's applicant an existing user."""

from __future__ import annotations

import pytest

from engine.cases import CaseService
from engine.errors import InvalidData
from engine.publishing import publish_definition
from engine.store import Store
from engine.users import add_user
from tests.conftest import definition_text
from tests.engine.conftest import applicant, local, office
from tests.engine.test_cases import counts
from tests.engine.test_machine import SMALL

DAN = applicant("dan")


@pytest.fixture
def published(store: Store) -> Store:
    publish_definition(store, definition_text(SMALL), now=local(2027, 1, 4, 8, 0))
    return store


@pytest.mark.parametrize("age", [-(2**63), 2**63 - 1, 0])
def test_integer_data_at_the_bounds_is_stored_and_read_back_exactly(published: Store, service: CaseService, age: int) -> None:
    case = service.start(DAN, code="T-1", unit="u1", data={"kind": "a", "age": age})
    assert service.get(DAN, case.id).data["age"] == age
    other = -age - 1  # the other bound (and -1 for 0)
    service.act(DAN, case.id, step="nop", outcome="done", data={"age": other})
    assert service.get(DAN, case.id).data["age"] == other


@pytest.mark.parametrize("age", [-(2**63) - 1, 2**63, 10**300])
def test_integer_data_past_the_bounds_is_refused_with_the_fields_name(published: Store, service: CaseService, age: int) -> None:
    with pytest.raises(InvalidData) as caught:
        service.start(DAN, code="T-1", unit="u1", data={"kind": "a", "age": age})
    [problem] = caught.value.problems
    assert problem.field == "age" and "“age”" in problem.message and "2^63" in problem.message
    case = service.start(DAN, code="T-1", unit="u1", data={"kind": "a"})
    with pytest.raises(InvalidData):
        service.act(DAN, case.id, step="nop", outcome="done", data={"age": age})
    assert service.get(DAN, case.id).data == {"kind": "a"} and counts(published)[0] == 1


def test_a_case_for_an_applicant_who_is_no_user_is_refused_in_the_start(published: Store, service: CaseService) -> None:
    desk = office("cb")
    with pytest.raises(InvalidData) as caught:
        service.start(desk, code="T-1", unit="u1", data={"kind": "a"}, applicant="nobody")
    assert [p.field for p in caught.value.problems] == ["applicant"] and "nobody" in caught.value.problems[0].message
    assert counts(published) == (0, 0, 0)
    with published.unit() as uow:
        add_user(uow, "somebody", name="Ai đó", unit="u1")
    case = service.start(desk, code="T-1", unit="u1", data={"kind": "a"}, applicant="somebody")
    assert case.applicant == "somebody"
