"""The shape of a ``tinhgon/1`` file, as pydantic models.

These models check keys and types only (unknown keys, wrong types, missing
required keys, value ranges); what needs the whole definition (ids that
resolve, the ``after`` graph, conditions against fields) is checked in
:mod:`procedures.loader`. They also give :func:`json_schema`, which editors
use for completion and checking as you type.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import durations
from .messages import t
from .yamlio import describe_value, grouped

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
FORMAT = "tinhgon/1"
MAX_MONEY = 10**15
"""The largest amount of money, and the largest annual volume, a definition may write"""
MAX_VERSION = 1_000_000

Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="lowercase letters, digits and _, starting with a letter")]
Duration = Annotated[
    str,
    Field(
        pattern=durations.PATTERN,
        description='working time, e.g. "15d", "4h", "30m", "1d4h"; 1d = 8 working hours',
    ),
]
Code = Annotated[str, Field(pattern=CODE_PATTERN, description="1-100 of A-Z a-z 0-9 . _ -, starting with a letter or digit")]
Money = Annotated[int, Field(ge=0, le=MAX_MONEY, description="VND")]
Price = Annotated[float, Field(ge=0, le=MAX_MONEY, description="VND")]
Amount = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]

RoleKind = Literal["applicant", "office", "system"]
StepKind = Literal[
    "submit",
    "receive",
    "review",
    "verify",
    "approve",
    "sign",
    "pay",
    "notify",
    "issue",
    "archive",
    "transfer",
    "task",
]
FieldType = Literal["string", "integer", "number", "boolean", "date", "enum"]
Channel = Literal["in_person", "online", "post"]

_CONDITION_DEF: dict[str, Any] = {
    "description": "a declarative condition on the case data",
    "oneOf": [
        {
            "type": "object",
            "required": ["field"],
            "properties": {
                "field": {"type": "string", "pattern": ID_PATTERN},
                **{op: {} for op in ("equals", "not_equals", "gt", "gte", "lt", "lte")},
                "in": {"type": "array"},
                "not_in": {"type": "array"},
                "exists": {"type": "boolean"},
            },
            "minProperties": 2,
            "maxProperties": 2,
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/Condition"}}},
        },
        {
            "type": "object",
            "required": ["any"],
            "additionalProperties": False,
            "properties": {"any": {"type": "array", "items": {"$ref": "#/$defs/Condition"}}},
        },
        {
            "type": "object",
            "required": ["not"],
            "additionalProperties": False,
            "properties": {"not": {"$ref": "#/$defs/Condition"}},
        },
    ],
}
_OUTCOMES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "decision name -> effect",
    "additionalProperties": {
        "oneOf": [
            {"enum": ["proceed", "reject"]},
            {
                "type": "object",
                "required": ["return"],
                "additionalProperties": False,
                "properties": {"return": {"type": "string", "pattern": ID_PATTERN}},
            },
            {
                "type": "object",
                "required": ["effect"],
                "additionalProperties": False,
                "properties": {"effect": {"enum": ["proceed", "reject"]}, "label": {"type": "string", "minLength": 1}},
            },
            {
                "type": "object",
                "required": ["return"],
                "additionalProperties": False,
                "properties": {
                    "return": {"type": "string", "pattern": ID_PATTERN},
                    "label": {"type": "string", "minLength": 1},
                },
            },
        ]
    },
}
_VALUES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "the allowed strings of an enum field, each plain or as {value, label}",
    "items": {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "required": ["value", "label"],
                "additionalProperties": False,
                "properties": {"value": {"type": "string"}, "label": {"type": "string", "minLength": 1}},
            },
        ]
    },
}


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class RoleSpec(Spec):
    id: Identifier
    name: str
    kind: RoleKind
    unit: str | None = None


class CopiesSpec(Spec):
    originals: Count = 0
    copies: Count = 0
    certified: Count = 0


class DocumentSpec(Spec):
    id: Identifier
    name: str
    from_: Literal["applicant", "registry"] | None = Field(default=None, alias="from")
    registry: str | None = None
    prep_hours: Amount = 0.0
    prep_cost: Price = 0.0
    deliverable: bool = False
    copies: CopiesSpec | None = None
    present_only: bool = False


class FieldSpec(Spec):
    id: Identifier
    name: str | None = None
    type: FieldType
    # Plain strings or {value, label}: checked by the loader, which gives
    # better messages than a union of models.
    values: Any = None
    required: bool = False


class StepSpec(Spec):
    id: Identifier
    name: str
    role: Identifier
    kind: StepKind = "task"
    duration: Duration = "0h"
    effort: Duration | None = None
    visit: bool = False
    fee: Money = 0
    inputs: list[Identifier] = []
    outputs: list[Identifier] = []
    after: list[Identifier] | None = Field(
        default=None, description="steps that must be finished first; default: the previous step"
    )
    # Conditions and outcomes are checked against the rest of the definition
    # by the loader, which gives better messages than a union of models.
    when: Any = None
    share: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="only with when: the expected fraction of cases in which the step runs"
    )
    outcomes: Any = None


class FeeSpec(Spec):
    name: str
    amount: Money


class CostModelSpec(Spec):
    hourly_cost: Price = 40000
    visit_cost: Price = 50000
    visit_hours: Amount = 2
    office_hourly_cost: Price = 50000
    reason: str | None = None


class RegistrySpec(Spec):
    id: Identifier
    name: str


class DefinitionSpec(Spec):
    """One version of one administrative procedure."""

    format: Literal["tinhgon/1"]
    code: Code
    name: str
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    based_on: Annotated[int, Field(ge=1, le=MAX_VERSION)] | None = None
    in_force_from: Annotated[str, Field(description="YYYY-MM-DD, the day this version takes effect")] | None = None
    abolished: str | None = None
    merged_into: str | None = None
    registries: list[RegistrySpec] = []
    business: bool = False
    sector: str | None = None
    agency: str | None = None
    scope: Literal["public", "internal"] = "public"
    channels: list[Channel] = ["in_person"]
    time_limit: Duration | None = None
    annual_volume: Annotated[int, Field(ge=0, le=MAX_MONEY)] = 0
    legal_basis: list[str] = []
    fees: list[FeeSpec] = []
    cost_model: CostModelSpec = CostModelSpec()
    fields: list[FieldSpec] = []
    # Required unless the version is abolished: the loader says so.
    roles: list[RoleSpec] | None = None
    documents: list[DocumentSpec] | None = None
    steps: list[StepSpec] | None = None


ITEM_MODELS: dict[str, type[Spec]] = {
    "roles": RoleSpec,
    "documents": DocumentSpec,
    "fields": FieldSpec,
    "steps": StepSpec,
}
"""The top-level lists whose items are checked one by one, so that one broken
item does not hide the errors of the others."""


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the format, for editors."""
    schema = DefinitionSpec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    defs["Condition"] = _CONDITION_DEF
    step = defs["StepSpec"]["properties"]
    step["when"] = {"$ref": "#/$defs/Condition", "description": "the step runs only when this holds"}
    step["outcomes"] = _OUTCOMES_SCHEMA
    defs["FieldSpec"]["properties"]["values"] = _VALUES_SCHEMA
    # roles, documents and steps are required unless the version abolishes the procedure
    schema["if"] = {"not": {"required": ["abolished"]}}
    schema["then"] = {"required": ["roles", "documents", "steps"]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tinhgon/1 procedure definition"
    return schema


# -- what a broken shape says -------------------------------------------------
_DURATION_KEYS = frozenset({"duration", "effort", "time_limit"})


def code_rule() -> str:
    """What a procedure code is made of, for messages."""
    return t("1 to 100 characters: unaccented letters A-Z a-z, digits, '.', '_' and '-', starting with a letter or digit")


def _type_words(kind: str) -> str | None:
    """What a pydantic type error of ``kind`` expected, in words."""
    if kind == "string_type":
        return t("text")
    if kind in ("int_type", "int_parsing"):
        return t("a whole number")
    if kind == "float_type":
        return t("a number")
    if kind == "bool_type":
        return t("true or false")
    if kind == "list_type":
        return t("a list")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return t("a mapping")
    return None


def _bound(value: Any) -> str:
    """A bound of a range (``0.0``, ``10**15``), written the way people write it."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return grouped(int(value))
    return str(value)


def shape_message(err: Mapping[str, Any], allowed: list[str]) -> str:
    """One pydantic error (from ``ValidationError.errors()``) as a message
    for the person who wrote the file, by its type, with its details: the
    key, what was expected, what was written. ``allowed`` are the keys of
    the mapping the error is in, for an unknown key."""
    loc: tuple[str | int, ...] = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    last = loc[-1] if loc else None
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(last), allowed, n=1)
        if close:
            return t("unknown key «{key}»; did you mean «{close}»?", key=last, close=close[0])
        return t("unknown key «{key}»; allowed keys: {allowed}", key=last, allowed=", ".join(allowed))
    if kind == "missing":
        return t("missing required key «{key}»", key=last)
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return t("{value} is not allowed here; use one of {choices}", value=describe_value(value), choices=choices)
    if last == "share" and len(loc) >= 2:
        return t(
            "share is the fraction of cases in which the step runs: a number above 0 and at most 1; got {value}",
            value=describe_value(value),
        )
    if kind == "string_pattern_mismatch" and loc == ("code",):
        return t("procedure code «{code}» is not valid: a code has {rule}", code=value, rule=code_rule())
    if kind == "string_pattern_mismatch" and last in _DURATION_KEYS:
        try:
            durations.parse_hours(str(value))
        except ValueError as exc:
            return str(exc)
        return t("«{value}» is not a duration", value=value)
    if kind == "string_pattern_mismatch":
        return t("«{value}» is not an id: use lowercase letters, digits and _, starting with a letter", value=value)
    if kind in ("greater_than_equal", "greater_than"):
        return t("must be at least {bound}, got {value}", bound=_bound(ctx.get("ge", ctx.get("gt"))), value=value)
    if kind == "less_than_equal":
        return t("must be at most {bound}; got {value}", bound=_bound(ctx.get("le")), value=describe_value(value))
    expected = _type_words(kind)
    if expected is not None:
        if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return t(
                "expected {expected}, got {value} (put it in quotes to keep it as text)",
                expected=expected,
                value=describe_value(value),
            )
        return t("expected {expected}, got {value}", expected=expected, value=describe_value(value))
    if kind == "finite_number":
        return t("must be a finite number")
    if kind == "too_short":
        return t(
            "must hold at least {count}; it holds {actual}", count=ctx.get("min_length", 1), actual=ctx.get("actual_length", 0)
        )
    return t("is not valid here: {detail}", detail=str(err.get("msg", kind)))
