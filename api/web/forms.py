"""The start-a-case form, generated from a procedure's ``fields``.

Each field type has its input: text, a whole number, a number, a checkbox
(boolean), a date picker (``input type=date``), a list to choose from
(enum). What the browser sends is turned into typed values here; the engine
then checks the data against the procedure (:func:`engine.fields.check_data`)
and every problem, ours or the engine's, is shown next to its field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from engine.errors import FieldProblem
from procedures.model import Definition, FieldDef

PREFIX = "f_"
"""Form names of data fields carry a prefix, so no field id can clash with ``csrf`` or ``unit``."""
EXPECTED = {
    "string": "một đoạn chữ",
    "integer": "một số nguyên (ví dụ 3)",
    "number": "một số (ví dụ 2,5)",
    "boolean": "có hoặc không",
    "date": "một ngày hợp lệ",
    "enum": "một trong các lựa chọn",
}
INPUTS = {"string": "text", "integer": "number", "number": "text", "boolean": "checkbox", "date": "date", "enum": "select"}


@dataclass(frozen=True)
class FormField:
    """One input of the form, with what was entered and what is wrong with it."""

    id: str
    label: str
    type: str
    required: bool
    values: tuple[str, ...]
    value: Any
    error: str | None
    labels: tuple[tuple[str, str], ...] = ()
    """``(value, label)`` of the enum values the definition labels"""

    def choice(self, value: str) -> str:
        """What people read for one of the values: its label, else the value with spaces."""
        return next((label for v, label in self.labels if v == value), None) or choice_text(value)

    @property
    def name(self) -> str:
        return PREFIX + self.id

    @property
    def input(self) -> str:
        return INPUTS.get(self.type, "text")


def choice_text(value: str, field: FieldDef | None = None) -> str:
    """An enum value for people: the label ``field`` gives it, else the value with spaces."""
    if field is not None and field.value_label(value) != value:
        return field.value_label(value)
    return value.replace("_", " ")


def form_fields(
    defn: Definition, values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None
) -> list[FormField]:
    values, errors = values or {}, errors or {}
    return [
        FormField(f.id, f.name or f.id, f.type, f.required, f.values or (), values.get(f.id), errors.get(f.id), f.value_labels)
        for f in defn.fields
    ]


def _parse(spec: FieldDef, raw: str) -> tuple[Any, str | None]:
    text = raw.strip()
    if spec.type == "boolean":
        return True, None
    if not text:
        return None, None
    if spec.type == "integer":
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            return text, f"Phải là {EXPECTED['integer']}."
        return int(text), None
    if spec.type == "number":
        normal = text.replace(".", "").replace(",", ".") if "," in text else text
        try:
            value = float(normal)
        except ValueError:
            return text, f"Phải là {EXPECTED['number']}."
        if not math.isfinite(value):
            return text, f"Phải là {EXPECTED['number']}."
        return (int(value) if value.is_integer() and "." not in normal else value), None
    return text, None


def parse_form(defn: Definition, form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The case data the form gives, and the fields whose input cannot be read."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in defn.fields:
        raw = form.get(PREFIX + spec.id)
        if spec.type == "boolean":
            data[spec.id] = raw is not None
            continue
        value, error = _parse(spec, raw if isinstance(raw, str) else "")
        data[spec.id] = value
        if error:
            errors[spec.id] = error
    return data, errors


def field_errors(defn: Definition, problems: Iterable[FieldProblem]) -> dict[str, str]:
    """The engine's problems as the form says them, by field (chosen by each problem's ``kind``)."""
    out: dict[str, str] = {}
    for p in problems:
        spec = defn.field_by_id.get(p.field)
        if spec is None:
            out[p.field] = "Trường này không có trong thủ tục."
        elif p.kind == "required":
            out[p.field] = "Bắt buộc nhập."
        elif p.kind == "unstorable":
            out[p.field] = "Không được chứa ký tự NUL (mã 0)."
        elif spec.type == "enum":
            out[p.field] = "Hãy chọn một trong các lựa chọn: " + ", ".join(choice_text(v) for v in spec.values or ()) + "."
        else:
            out[p.field] = f"Giá trị không hợp lệ: phải là {EXPECTED.get(spec.type, spec.type)}."
    return out
