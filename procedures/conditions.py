"""Declarative conditions on case data (a step's ``when``).

A condition is parsed once, when its definition loads, into a small tree of
frozen objects; :func:`evaluate` walks that tree with an allow-list of
operators. Nothing is ever evaluated as code.

>>> fields = {"age": "integer"}
>>> cond = parse({"field": "age", "gte": 18}, fields)
>>> evaluate(cond, {"age": 20}), evaluate(cond, {"age": 3}), evaluate(cond, {})
(True, False, False)
>>> describe(cond)
'age ≥ 18'
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .messages import t
from .yamlio import describe_value

COMPARISONS = ("equals", "not_equals", "gt", "gte", "lt", "lte")
MEMBERSHIP = ("in", "not_in")
ORDERED_TYPES = frozenset({"integer", "number", "date"})
_SYMBOL = {"equals": "=", "not_equals": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


@dataclass(frozen=True, slots=True)
class Compare:
    """``{field: F, OP: value}`` for OP in equals, not_equals, gt, gte, lt, lte, in, not_in."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Exists:
    field: str
    present: bool


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Compare | Exists | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """What is wrong, and where below the condition (path segments)."""

    path: tuple[str | int, ...]
    message: str


class ConditionError(ValueError):
    def __init__(self, problems: list[ConditionProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def value_fits(value: Any, field_type: str, values: tuple[str, ...] | None = None) -> bool:
    """Whether ``value`` is a value of a field of ``field_type``."""
    if field_type in ("string",):
        return isinstance(value, str)
    if field_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if field_type == "boolean":
        return isinstance(value, bool)
    if field_type == "date":
        return isinstance(value, (str, dt.date)) and _as_date(value) is not None
    if field_type == "enum":
        return isinstance(value, str) and (values is None or value in values)
    return False


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def expected_text(field_type: str, values: tuple[str, ...] | None = None) -> str:
    """What a value of a field of ``field_type`` is, in words."""
    if field_type == "enum" and values is not None:
        return t("one of {values}", values=", ".join(f"«{v}»" for v in values))
    if field_type == "string":
        return t("text")
    if field_type == "integer":
        return t("a whole number")
    if field_type == "number":
        return t("a number")
    if field_type == "boolean":
        return t("true or false")
    if field_type == "date":
        return t("a date written YYYY-MM-DD")
    return field_type


FieldTypes = Mapping[str, str] | Mapping[str, tuple[str, tuple[str, ...] | None]]


def _field_info(fields: FieldTypes, name: str) -> tuple[str, tuple[str, ...] | None] | None:
    info = fields.get(name)
    if info is None:
        return None
    if isinstance(info, str):
        return info, None
    return info


def parse(raw: Any, fields: FieldTypes, names: Mapping[str, str] | None = None) -> Condition:
    """Parse and type-check a condition against the declared fields.

    ``fields`` maps a field id to its type, or to ``(type, enum values)``;
    ``names`` a field id to the name its messages call it by (its id
    otherwise). Raises :class:`ConditionError` listing every problem found.
    """
    problems: list[ConditionProblem] = []
    cond = _parse(raw, fields, (), problems, names or {})
    if problems or cond is None:
        raise ConditionError(problems or [ConditionProblem((), t("empty condition"))])
    return cond


def _parse(
    raw: Any, fields: FieldTypes, at: tuple[str | int, ...], problems: list[ConditionProblem], names: Mapping[str, str]
) -> Condition | None:
    if not isinstance(raw, Mapping) or not raw:
        message = t(
            "a condition is a mapping such as {{field: F, equals: V}}, {{all: [...]}}, {{any: [...]}} or {{not: ...}}; got {value}",
            value=describe_value(raw),
        )
        problems.append(ConditionProblem(at, message))
        return None
    keys = set(raw)
    for combinator in ("all", "any"):
        if combinator in keys:
            extra = keys - {combinator}
            if extra:
                others = ", ".join(sorted(extra))
                problems.append(ConditionProblem(at, t("{key} cannot be combined with {others}", key=combinator, others=others)))
                return None
            items = raw[combinator]
            if not isinstance(items, list) or not items:
                problems.append(
                    ConditionProblem((*at, combinator), t("{key} takes a non-empty list of conditions", key=combinator))
                )
                return None
            parsed = [_parse(item, fields, (*at, combinator, i), problems, names) for i, item in enumerate(items)]
            if any(p is None for p in parsed):
                return None
            children = tuple(p for p in parsed if p is not None)
            return AllOf(children) if combinator == "all" else AnyOf(children)
    if "not" in keys:
        if keys != {"not"}:
            others = ", ".join(sorted(keys - {"not"}))
            problems.append(ConditionProblem(at, t("{key} cannot be combined with {others}", key="not", others=others)))
            return None
        inner = _parse(raw["not"], fields, (*at, "not"), problems, names)
        return Not(inner) if inner is not None else None
    if "field" not in keys:
        problems.append(ConditionProblem(at, t("a condition names a field (or combines conditions with all, any, not)")))
        return None
    name = raw["field"]
    ops = keys - {"field"}
    allowed = set(COMPARISONS) | set(MEMBERSHIP) | {"exists"}
    unknown = ops - allowed
    if unknown:
        first = sorted(unknown)[0]
        message = t("unknown operator «{operator}»; use one of {allowed}", operator=first, allowed=", ".join(sorted(allowed)))
        problems.append(ConditionProblem((*at, first), message))
        return None
    if len(ops) != 1:
        message = (
            t("a condition on a field takes exactly one operator, not {count}", count=len(ops))
            if ops
            else t("a condition on a field takes exactly one operator")
        )
        problems.append(ConditionProblem(at, message))
        return None
    (op,) = ops
    if not isinstance(name, str):
        problems.append(ConditionProblem((*at, "field"), t("field must be a field id, not {value}", value=describe_value(name))))
        return None
    info = _field_info(fields, name)
    if info is None:
        problems.append(ConditionProblem((*at, "field"), t("unknown field «{field}»: declare it under fields", field=name)))
        return None
    ftype, values = info
    called = names.get(name) or name
    value = raw[op]
    if op == "exists":
        if not isinstance(value, bool):
            problems.append(ConditionProblem((*at, op), t("exists takes true or false")))
            return None
        return Exists(name, value)
    if op in MEMBERSHIP:
        if not isinstance(value, list) or not value:
            problems.append(ConditionProblem((*at, op), t("{operator} takes a non-empty list of values", operator=op)))
            return None
        bad = [v for v in value if not value_fits(v, ftype, values)]
        if bad:
            problems.append(ConditionProblem((*at, op), _misfit(bad[0], called, ftype, values)))
            return None
        return Compare(name, op, tuple(value))
    if op in ("gt", "gte", "lt", "lte") and ftype not in ORDERED_TYPES:
        message = t(
            "{operator} compares numbers or dates; field «{field}» is of type {type}", operator=op, field=called, type=ftype
        )
        problems.append(ConditionProblem((*at, op), message))
        return None
    if not value_fits(value, ftype, values):
        problems.append(ConditionProblem((*at, op), _misfit(value, called, ftype, values)))
        return None
    return Compare(name, op, value)


def _misfit(value: Any, field: str, field_type: str, values: tuple[str, ...] | None) -> str:
    expected = expected_text(field_type, values)
    return t(
        "{value} does not fit field «{field}»: expected {expected}", value=describe_value(value), field=field, expected=expected
    )


def _key(value: Any) -> Any:
    """Comparable form: dates written as text compare as dates."""
    as_date = _as_date(value) if isinstance(value, (str, dt.date)) else None
    return as_date if as_date is not None else value


def evaluate(cond: Condition, data: Mapping[str, Any]) -> bool:
    """Whether ``cond`` holds for the case ``data``.

    A missing field makes every comparison false, except ``not_equals`` and
    ``not_in``, which are then true; ``exists`` says whether it is there.
    """
    if isinstance(cond, AllOf):
        return all(evaluate(c, data) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(evaluate(c, data) for c in cond.items)
    if isinstance(cond, Not):
        return not evaluate(cond.item, data)
    present = cond.field in data and data[cond.field] is not None
    if isinstance(cond, Exists):
        return present == cond.present
    op = cond.op
    if not present:
        return op in ("not_equals", "not_in")
    actual = data[cond.field]
    if op == "equals":
        return bool(_key(actual) == _key(cond.value))
    if op == "not_equals":
        return bool(_key(actual) != _key(cond.value))
    if op == "in":
        return _key(actual) in {_key(v) for v in cond.value}
    if op == "not_in":
        return _key(actual) not in {_key(v) for v in cond.value}
    try:
        left, right = _key(actual), _key(cond.value)
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def fields_used(cond: Condition) -> set[str]:
    if isinstance(cond, (AllOf, AnyOf)):
        return set().union(*(fields_used(c) for c in cond.items))
    if isinstance(cond, Not):
        return fields_used(cond.item)
    return {cond.field}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "đúng" if value else "sai"
    return str(value)


Words = Callable[[str], str]
"""A field's name for people, from its id."""
ValueWords = Callable[[str, Any], str]
"""A value for people, from its field's id and the value."""


def _plain_value(_field: str, value: Any) -> str:
    return _show(value)


def describe(cond: Condition, name: Words = str, value: ValueWords = _plain_value) -> str:
    """The condition as a short sentence, for diagrams and pages; ``name``
    and ``value`` say how a field and a value read (their ids, by default).

    >>> describe(parse({"field": "k", "in": ["a", "b"]}, {"k": "enum"}), str.upper, lambda f, v: v * 2)
    'K thuộc {aa, bb}'
    """

    def words(c: Condition) -> str:
        return f"({describe(c, name, value)})" if isinstance(c, (AllOf, AnyOf)) else describe(c, name, value)

    if isinstance(cond, AllOf):
        return " và ".join(words(c) for c in cond.items)
    if isinstance(cond, AnyOf):
        return " hoặc ".join(words(c) for c in cond.items)
    if isinstance(cond, Not):
        return f"không ({describe(cond.item, name, value)})"
    if isinstance(cond, Exists):
        return f"có {name(cond.field)}" if cond.present else f"không có {name(cond.field)}"
    if cond.op in MEMBERSHIP:
        listed = ", ".join(value(cond.field, v) for v in cond.value)
        return f"{name(cond.field)} {'thuộc' if cond.op == 'in' else 'không thuộc'} {{{listed}}}"
    return f"{name(cond.field)} {_SYMBOL[cond.op]} {value(cond.field, cond.value)}"
