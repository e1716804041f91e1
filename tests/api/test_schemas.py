"""The case as the API writes it: :func:`api.schemas.case_json`, which
every case action answers with, writes exactly what the model would."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.schemas import CasePublic, GuidedPublic, StepPublic, case_document, case_json
from engine.views import CaseView
from tests.engine.conftest import local
from tests.engine.test_machine import CB, DAN, KT, LD, Run, compiled


def _fresh(run: Run) -> None:
    pass


def _returned(run: Run) -> None:
    run.act("nop", "done", DAN)
    run.at(2027, 3, 1, 10, 0).act("kiem_tra", "bo_sung", CB, missing=["don"], comment="Thiếu đơn")


def _completed(run: Run) -> None:
    run.through_review()
    run.act("xac_minh", "done", CB)
    run.act("tinh_phi", "done", KT)
    run.act("duyet", "dong_y", LD)


@pytest.mark.parametrize("moves", [_fresh, _returned, _completed], ids=["fresh", "returned to the applicant", "completed"])
def test_a_case_is_written_as_its_model_writes_it(moves: Callable[[Run], None]) -> None:
    run = Run(compiled(), {"kind": "a", "age": 30, "urgent": False})
    moves(run)
    run.case.data["ghi_chu"] = {"văn bản": 'Hồ sơ "đủ"\n', "số": [1, 2.5, None, True]}
    view = CaseView.of_state(7, "T-1", 1, 4, run.case, run.machine, now=local(2027, 3, 9, 8, 0))
    assert case_json(view) == CasePublic.of(view).model_dump_json()
    document = case_document(view)
    assert list(document) == list(CasePublic.model_fields)
    assert all(list(s) == list(StepPublic.model_fields) for s in document["steps"])
    guided = document["returned_to_applicant"]
    assert guided is None or list(guided) == list(GuidedPublic.model_fields)
    assert (guided is not None) == (moves is _returned)
