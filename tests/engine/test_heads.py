"""The typed rows of :mod:`engine.heads` name only columns their statements select."""

from __future__ import annotations

import pytest

from engine.direct import Statement
from engine.heads import CaseHead, ClaimingHead, SignedInRow, columns_of
from engine.rows import READ_CASE, READ_CASE_STEPS, READ_CASE_STEPS_CLAIM, READ_SIGNED_IN_CASE


@pytest.mark.parametrize(
    ("protocol", "statement"),
    [
        (CaseHead, READ_CASE),
        (CaseHead, READ_CASE_STEPS),
        (ClaimingHead, READ_CASE_STEPS_CLAIM),
        (SignedInRow, READ_SIGNED_IN_CASE),
        (CaseHead, READ_SIGNED_IN_CASE),  # what the signed-in path hands on once the case is there
    ],
)
def test_each_protocol_names_columns_its_statement_selects(protocol: type, statement: Statement) -> None:
    selected = set(statement.statement.selected_columns.keys())  # type: ignore[attr-defined]
    used = columns_of(protocol)
    assert used, protocol
    assert used <= selected, used - selected


def test_the_case_head_covers_every_column_of_the_case_row() -> None:
    assert columns_of(CaseHead) == set(READ_CASE.statement.selected_columns.keys())  # type: ignore[attr-defined]
