"""Case data checked against a procedure's ``fields``.

Unknown keys, values of the wrong type or outside an enum, and missing
required fields are each reported against their field, all at once, so that
an applicant corrects the whole form in one go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from procedures.conditions import expected_text, value_fits
from procedures.messages import t
from procedures.model import Definition

from .errors import FieldProblem, InvalidData

INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1
"""The bounds of an ``integer`` field's value: a signed 64-bit integer,
which both databases keep exactly and every client language reads back
(JSON itself sets no bound, Python none either)."""


def nul_text() -> str:
    """The problem of a text value that no database here keeps alike (a FieldProblem of kind ``unstorable``)."""
    return t("text must not contain NUL characters or lone surrogates")


def _not_an_object() -> FieldProblem:
    return FieldProblem("(data)", t("case data must be an object of field values"), "not-object")


def unstorable(text: str) -> bool:
    """Whether ``text`` holds what is refused on every database alike: a NUL
    character (PostgreSQL stores none, in text or in JSON) or a lone
    surrogate (a ``\\ud800`` escape in JSON, or an undecodable byte in a
    command-line argument: it has no UTF-8, so neither database can take it)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_data(defn: Definition, data: Any, *, case_id: int | None = None) -> dict[str, Any]:
    """``data`` as a plain dict when it satisfies ``defn.fields``.

    ``None`` values count as absent (a form's empty input). A text that is
    :func:`unstorable` (a field name too) is refused on every database.

    Raises:
        InvalidData: one :class:`FieldProblem` per offending field.
    """
    if not isinstance(data, Mapping):
        raise InvalidData([_not_an_object()], case_id=case_id)
    problems: list[FieldProblem] = []
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(key, str) and unstorable(key):
            problems.append(
                FieldProblem("(data)", t("a field name must not contain NUL characters or lone surrogates"), "unstorable")
            )
            continue
        spec = defn.field_by_id.get(key) if isinstance(key, str) else None
        if spec is None:
            known = ", ".join(f.id for f in defn.fields)
            unknown = (
                t("unknown field (this procedure's fields: {fields})", fields=known)
                if known
                else t("unknown field (this procedure has no fields)")
            )
            problems.append(FieldProblem(str(key), unknown, "unknown"))
            continue
        if value is None:
            continue
        if isinstance(value, str) and unstorable(value):
            problems.append(FieldProblem(key, nul_text(), "unstorable"))
            continue
        if not value_fits(value, spec.type, spec.values):
            wrong = t("must be {expected}, not {value}", expected=expected_text(spec.type, spec.values), value=repr(value))
            problems.append(FieldProblem(key, wrong, "type"))
            continue
        if spec.type == "integer" and not INTEGER_MIN <= value <= INTEGER_MAX:
            problems.append(FieldProblem(key, _out_of_range(key), "range"))
            continue
        if spec.type == "date" and isinstance(value, dt.date):
            # kept as the text JSON carries, so that stored data reads back equal
            value = (value.date() if isinstance(value, dt.datetime) else value).isoformat()
        out[key] = value
    for spec in defn.fields:
        if spec.required and out.get(spec.id) is None and not any(p.field == spec.id for p in problems):
            problems.append(FieldProblem(spec.id, t("required"), "required"))
    if problems:
        raise InvalidData(problems, case_id=case_id)
    return out


def _out_of_range(key: str) -> str:
    return t(
        "field “{field}” must be a whole number from -9,223,372,036,854,775,808 to 9,223,372,036,854,775,807 (-2^63 to 2^63 - 1)",
        field=key,
    )


def amend(
    defn: Definition, current: Mapping[str, Any], changes: Any, *, case_id: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data after applying ``changes`` (a ``None`` value clears a field),
    checked like creation, and what actually changed (``{field: [old, new]}``).

    Raises:
        InvalidData: as :func:`check_data`.
    """
    if not isinstance(changes, Mapping):
        raise InvalidData([_not_an_object()], case_id=case_id)
    merged: dict[str, Any] = dict(current)
    merged.update(changes)
    checked = check_data(defn, merged, case_id=case_id)
    diff = {k: [current.get(k), checked.get(k)] for k in sorted(set(current) | set(checked)) if current.get(k) != checked.get(k)}
    return checked, diff
